import CreditsCore
import GRDB

/// Versioned migrations of the SQLite store. Append new ones; never edit a shipped one.
enum SQLiteSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-ledger") { db in
            try db.execute(sql: """
                CREATE TABLE user_credits (
                    user_id TEXT PRIMARY KEY NOT NULL,
                    balance INTEGER NOT NULL DEFAULT 0,
                    reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
                    total_earned INTEGER NOT NULL DEFAULT 0,
                    total_spent INTEGER NOT NULL DEFAULT 0,
                    total_purchased INTEGER NOT NULL DEFAULT 0,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL
                ) STRICT;

                CREATE TABLE platform_accounts (
                    name TEXT PRIMARY KEY NOT NULL,
                    balance INTEGER NOT NULL DEFAULT 0,
                    updated_at INTEGER NOT NULL
                ) STRICT;

                -- The double-entry journal: each row moves amount from debit_account to
                -- credit_account and carries both accounts' balances after it.
                CREATE TABLE credit_transactions (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    kind TEXT NOT NULL,
                    user_id TEXT NOT NULL,
                    debit_account TEXT NOT NULL,
                    credit_account TEXT NOT NULL,
                    amount INTEGER NOT NULL CHECK (amount > 0),
                    debit_balance_after INTEGER NOT NULL,
                    credit_balance_after INTEGER NOT NULL,
                    reference TEXT NOT NULL,
                    description TEXT NOT NULL DEFAULT '',
                    created_at INTEGER NOT NULL,
                    CHECK (debit_account <> credit_account)
                ) STRICT;
                CREATE INDEX credit_transactions_by_user ON credit_transactions (user_id, id);
                -- No unique index on reference: idempotency_keys' primary key, written in the
                -- same transaction, already makes each operation apply once, and every extra
                -- random-order index costs page writes on each commit.

                CREATE TABLE credit_purchases (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    user_id TEXT NOT NULL,
                    package TEXT NOT NULL,
                    payment_method TEXT NOT NULL,
                    payment_id TEXT NOT NULL,
                    credits INTEGER NOT NULL,
                    base_credits INTEGER NOT NULL,
                    bonus_credits INTEGER NOT NULL,
                    price_cents INTEGER NOT NULL,
                    status TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    UNIQUE (payment_method, payment_id)
                ) STRICT;
                CREATE INDEX credit_purchases_by_user ON credit_purchases (user_id, id);

                -- Every key an operation was applied under (natural and Idempotency-Key), with a
                -- hash of the request and the outcome to replay, rejections included.
                CREATE TABLE idempotency_keys (
                    key TEXT PRIMARY KEY NOT NULL,
                    request_hash BLOB NOT NULL,
                    outcome TEXT NOT NULL,
                    created_at INTEGER NOT NULL
                ) STRICT, WITHOUT ROWID;
                """)
            for account in PlatformAccount.allCases {
                try db.execute(
                    sql: "INSERT INTO platform_accounts (name, balance, updated_at) VALUES (?, 0, 0)",
                    arguments: [account.rawValue])
            }
        }
        migrator.registerMigration("v2-uploads") { db in
            try db.execute(sql: """
                -- An upload and its hold. Ledger operations create it (queued) and settle it
                -- (confirmed or refunded); the worker moves it through batched, submitted, failed.
                CREATE TABLE file_uploads (
                    upload_id TEXT PRIMARY KEY NOT NULL,
                    user_id TEXT NOT NULL,
                    file_type TEXT NOT NULL,
                    file_count INTEGER NOT NULL,
                    features TEXT NOT NULL,
                    size_bytes INTEGER NOT NULL,
                    priority TEXT NOT NULL,
                    credits_reserved INTEGER NOT NULL CHECK (credits_reserved > 0),
                    credits_charged INTEGER NOT NULL DEFAULT 0,
                    status TEXT NOT NULL,
                    batch_id TEXT,
                    failure_reason TEXT,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL
                ) STRICT;
                CREATE INDEX file_uploads_by_status ON file_uploads (status, created_at);
                CREATE INDEX file_uploads_by_user ON file_uploads (user_id, created_at);
                """)
        }
        migrator.registerMigration("v3-gas") { db in
            try db.execute(sql: """
                -- One row per chain message. attoFIL amounts are decimal text (they can pass 64 bits).
                CREATE TABLE filecoin_gas_transactions (
                    id TEXT PRIMARY KEY NOT NULL,
                    batch_id TEXT NOT NULL,
                    message_cid TEXT NOT NULL,
                    upload_ids TEXT NOT NULL,
                    items INTEGER NOT NULL,
                    gas_limit INTEGER NOT NULL,
                    gas_used INTEGER NOT NULL,
                    base_fee TEXT NOT NULL,
                    premium TEXT NOT NULL,
                    fee_cap TEXT NOT NULL,
                    total_cost TEXT NOT NULL,
                    individual_cost TEXT NOT NULL,
                    immediate_cost TEXT NOT NULL,
                    status TEXT NOT NULL,
                    attempt INTEGER NOT NULL,
                    failure_reason TEXT,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL
                ) STRICT;
                CREATE INDEX filecoin_gas_transactions_by_time ON filecoin_gas_transactions (created_at);
                """)
        }
        migrator.registerMigration("v4-users") { db in
            try db.execute(sql: """
                -- Creators as the platform registers them, for sponsorship.
                CREATE TABLE users (
                    user_id TEXT PRIMARY KEY NOT NULL,
                    wallet_address TEXT,
                    signed_up_at INTEGER NOT NULL,
                    sponsored_used INTEGER NOT NULL DEFAULT 0 CHECK (sponsored_used >= 0),
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL
                ) STRICT;
                """)
        }
        migrator.registerMigration("v5-sponsored-uploads") { db in
            try db.execute(sql: """
                ALTER TABLE file_uploads ADD COLUMN sponsored INTEGER NOT NULL DEFAULT 0;
                INSERT OR IGNORE INTO platform_accounts (name, balance, updated_at) VALUES ('sponsorship', 0, 0);
                INSERT OR IGNORE INTO platform_accounts (name, balance, updated_at) VALUES ('sponsored_holds', 0, 0);
                -- Net sponsored credits per UTC month ("2026-12"), kept with the ledger change.
                CREATE TABLE sponsorship_budget (month TEXT PRIMARY KEY NOT NULL, used INTEGER NOT NULL) STRICT;
                """)
        }
        migrator.registerMigration("v6-sponsored-uploads-table") { db in
            try db.execute(sql: """
                -- The seed's sponsored_uploads: uploads the platform paid for outright.
                CREATE TABLE sponsored_uploads (
                    file_upload_id TEXT PRIMARY KEY NOT NULL,
                    user_id TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    credits INTEGER NOT NULL,
                    usd_value_cents INTEGER NOT NULL,
                    gas_value_cents INTEGER NOT NULL,
                    created_at INTEGER NOT NULL
                ) STRICT;
                """)
        }
        migrator.registerMigration("v7-payments") { db in
            // SQLite cannot drop a NOT NULL: the table is rebuilt. A row without user_id is a
            // payment whose provider events came before anyone bought with it.
            try db.execute(sql: """
                CREATE TABLE credit_purchases_v7 (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    user_id TEXT,
                    package TEXT,
                    payment_method TEXT NOT NULL,
                    payment_id TEXT NOT NULL,
                    credits INTEGER NOT NULL,
                    base_credits INTEGER NOT NULL,
                    bonus_credits INTEGER NOT NULL,
                    price_cents INTEGER NOT NULL,
                    status TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    granted_on_call INTEGER NOT NULL DEFAULT 0,
                    succeeded INTEGER NOT NULL DEFAULT 0,
                    failed INTEGER NOT NULL DEFAULT 0,
                    amount_cents INTEGER NOT NULL DEFAULT 0,
                    refunded_cents INTEGER NOT NULL DEFAULT 0,
                    dispute TEXT NOT NULL DEFAULT 'none',
                    reversed INTEGER NOT NULL DEFAULT 0,
                    credits_granted INTEGER NOT NULL DEFAULT 0,
                    credits_reversed INTEGER NOT NULL DEFAULT 0,
                    UNIQUE (payment_method, payment_id)
                ) STRICT;
                INSERT INTO credit_purchases_v7 (id, user_id, package, payment_method, payment_id, credits, base_credits,
                    bonus_credits, price_cents, status, created_at, updated_at, granted_on_call, credits_granted)
                SELECT id, user_id, package, payment_method, payment_id, credits, base_credits, bonus_credits, price_cents,
                    status, created_at, updated_at, 1, credits FROM credit_purchases;
                DROP TABLE credit_purchases;
                ALTER TABLE credit_purchases_v7 RENAME TO credit_purchases;
                CREATE INDEX credit_purchases_by_user ON credit_purchases (user_id, id);
                """)
        }
        migrator.registerMigration("v8-credit-lots") { db in
            try db.execute(sql: """
                -- Every grant is a lot; spends burn lots in order; expired remainders leave for the
                -- expiry account. A user's lots with credits left add up to their balance (when
                -- not in arrears).
                CREATE TABLE credit_lots (
                    id INTEGER PRIMARY KEY,
                    user_id TEXT NOT NULL,
                    category TEXT NOT NULL,
                    source TEXT NOT NULL,
                    granted INTEGER NOT NULL CHECK (granted > 0),
                    remaining INTEGER NOT NULL CHECK (remaining >= 0),
                    expires_at INTEGER,
                    created_at INTEGER NOT NULL
                ) STRICT;
                CREATE INDEX credit_lots_open ON credit_lots (user_id) WHERE remaining > 0;
                CREATE INDEX credit_lots_expiring ON credit_lots (expires_at) WHERE remaining > 0;
                -- Which lots each journal row took from or put into, and each hold took from.
                ALTER TABLE credit_transactions ADD COLUMN lots TEXT NOT NULL DEFAULT '';
                ALTER TABLE file_uploads ADD COLUMN lots TEXT NOT NULL DEFAULT '';
                INSERT OR IGNORE INTO platform_accounts (name, balance, updated_at) VALUES ('expired', 0, 0);
                -- Credits from before lots: one paid (never expiring) lot per user with credits;
                -- where they came from was not recorded.
                INSERT INTO credit_lots (user_id, category, source, granted, remaining, expires_at, created_at)
                SELECT user_id, 'paid', 'before-lots', balance, balance, NULL, updated_at FROM user_credits WHERE balance > 0;
                """)
        }
        migrator.registerMigration("v9-lot-indexes") { db in
            // Indexes that do not mention `remaining`, so that burning a lot (the hot path)
            // updates no index; exhausted lots are filtered at the row.
            try db.execute(sql: """
                DROP INDEX credit_lots_open;
                DROP INDEX credit_lots_expiring;
                CREATE INDEX credit_lots_by_user ON credit_lots (user_id);
                CREATE INDEX credit_lots_by_expiry ON credit_lots (expires_at);
                """)
        }
        migrator.registerMigration("v10-payment-refunds") { db in
            // The refunds of a payment named one by one ("id=cents,..."; see PaymentRows), so that
            // refunds whose events carry no total add up.
            try db.execute(sql: "ALTER TABLE credit_purchases ADD COLUMN refunds TEXT NOT NULL DEFAULT ''")
        }
        migrator.registerMigration("v11-file-keys") { db in
            // A file upload is paid for once, whichever way: spends, uploads and sponsorships are
            // kept under one key, `file:<id>` (`LedgerOperation.storedKey`). Those applied before
            // are copied to it, so that they replay and another way under their id is refused.
            // Where an id was paid for twice before, the first keeps it (the second's replay is
            // refused as another request, and changes nothing).
            try db.execute(sql: """
                INSERT OR IGNORE INTO idempotency_keys (key, request_hash, outcome, created_at)
                SELECT 'file:' || substr(key, instr(key, ':') + 1), request_hash, outcome, created_at FROM idempotency_keys
                WHERE substr(key, 1, 6) = 'spend:' OR substr(key, 1, 7) = 'upload:' OR substr(key, 1, 10) = 'sponsored:'
                ORDER BY created_at, key
                """)
        }
        return migrator
    }
}
