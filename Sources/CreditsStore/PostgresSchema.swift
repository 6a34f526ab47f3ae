import CreditsCore
import Logging
import PostgresNIO

/// Versioned migrations of the PostgreSQL store, applied in order under an advisory lock (one
/// per schema) so that several instances starting at once migrate once. Append new ones; never
/// edit a shipped one.
enum PostgresSchema {
    static let migrations: [(version: String, sql: [String])] = [
        ("v1-ledger", [
            """
            CREATE TABLE user_credits (
                user_id TEXT PRIMARY KEY,
                balance BIGINT NOT NULL DEFAULT 0,
                reserved BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
                total_earned BIGINT NOT NULL DEFAULT 0,
                total_spent BIGINT NOT NULL DEFAULT 0,
                total_purchased BIGINT NOT NULL DEFAULT 0,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL)
            """,
            """
            CREATE TABLE platform_accounts (
                name TEXT PRIMARY KEY,
                balance BIGINT NOT NULL DEFAULT 0,
                updated_at BIGINT NOT NULL)
            """,
            """
            INSERT INTO platform_accounts (name, balance, updated_at)
            VALUES \(PlatformAccount.allCases.map { "('\($0.rawValue)', 0, 0)" }.joined(separator: ", "))
            """,
            """
            CREATE TABLE credit_transactions (
                id BIGSERIAL PRIMARY KEY,
                kind TEXT NOT NULL,
                user_id TEXT NOT NULL,
                debit_account TEXT NOT NULL,
                credit_account TEXT NOT NULL,
                amount BIGINT NOT NULL CHECK (amount > 0),
                debit_balance_after BIGINT NOT NULL,
                credit_balance_after BIGINT NOT NULL,
                reference TEXT NOT NULL,
                description TEXT NOT NULL DEFAULT '',
                created_at BIGINT NOT NULL,
                CHECK (debit_account <> credit_account))
            """,
            "CREATE INDEX credit_transactions_by_user ON credit_transactions (user_id, id)",
            """
            CREATE TABLE credit_purchases (
                id BIGSERIAL PRIMARY KEY,
                user_id TEXT NOT NULL,
                package TEXT NOT NULL,
                payment_method TEXT NOT NULL,
                payment_id TEXT NOT NULL,
                credits BIGINT NOT NULL,
                base_credits BIGINT NOT NULL,
                bonus_credits BIGINT NOT NULL,
                price_cents BIGINT NOT NULL,
                status TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                UNIQUE (payment_method, payment_id))
            """,
            "CREATE INDEX credit_purchases_by_user ON credit_purchases (user_id, id)",
            """
            CREATE TABLE idempotency_keys (
                key TEXT PRIMARY KEY,
                request_hash BYTEA NOT NULL,
                outcome TEXT NOT NULL,
                created_at BIGINT NOT NULL)
            """,
        ]),
        ("v2-uploads", [
            """
            CREATE TABLE file_uploads (
                upload_id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL,
                file_type TEXT NOT NULL,
                file_count BIGINT NOT NULL,
                features TEXT NOT NULL,
                size_bytes BIGINT NOT NULL,
                priority TEXT NOT NULL,
                credits_reserved BIGINT NOT NULL CHECK (credits_reserved > 0),
                credits_charged BIGINT NOT NULL DEFAULT 0,
                status TEXT NOT NULL,
                batch_id TEXT,
                failure_reason TEXT,
                attempts BIGINT NOT NULL DEFAULT 0,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL)
            """,
            "CREATE INDEX file_uploads_by_status ON file_uploads (status, created_at)",
            "CREATE INDEX file_uploads_by_user ON file_uploads (user_id, created_at)",
        ]),
        ("v3-gas", [
            """
            CREATE TABLE filecoin_gas_transactions (
                id TEXT PRIMARY KEY,
                batch_id TEXT NOT NULL,
                message_cid TEXT NOT NULL,
                upload_ids TEXT NOT NULL,
                items BIGINT NOT NULL,
                gas_limit BIGINT NOT NULL,
                gas_used BIGINT NOT NULL,
                base_fee TEXT NOT NULL,
                premium TEXT NOT NULL,
                fee_cap TEXT NOT NULL,
                total_cost TEXT NOT NULL,
                individual_cost TEXT NOT NULL,
                immediate_cost TEXT NOT NULL,
                status TEXT NOT NULL,
                attempt BIGINT NOT NULL,
                failure_reason TEXT,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL)
            """,
            "CREATE INDEX filecoin_gas_transactions_by_time ON filecoin_gas_transactions (created_at)",
        ]),
        ("v4-users", [
            """
            CREATE TABLE users (
                user_id TEXT PRIMARY KEY,
                wallet_address TEXT,
                signed_up_at BIGINT NOT NULL,
                sponsored_used BIGINT NOT NULL DEFAULT 0 CHECK (sponsored_used >= 0),
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL)
            """,
        ]),
        ("v5-sponsored-uploads", [
            "ALTER TABLE file_uploads ADD COLUMN sponsored BIGINT NOT NULL DEFAULT 0",
            "INSERT INTO platform_accounts (name, balance, updated_at) VALUES ('sponsorship', 0, 0), ('sponsored_holds', 0, 0) ON CONFLICT DO NOTHING",
            "CREATE TABLE sponsorship_budget (month TEXT PRIMARY KEY, used BIGINT NOT NULL)",
        ]),
        ("v6-sponsored-uploads-table", [
            """
            CREATE TABLE sponsored_uploads (
                file_upload_id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL,
                reason TEXT NOT NULL,
                credits BIGINT NOT NULL,
                usd_value_cents BIGINT NOT NULL,
                gas_value_cents BIGINT NOT NULL,
                created_at BIGINT NOT NULL)
            """,
        ]),
        // Payments: the facts providers reported and the credits granted and taken back. A row
        // without user_id is a payment whose events came before anyone bought with it.
        ("v7-payments", [
            "ALTER TABLE credit_purchases ALTER COLUMN user_id DROP NOT NULL",
            "ALTER TABLE credit_purchases ALTER COLUMN package DROP NOT NULL",
            """
            ALTER TABLE credit_purchases
                ADD COLUMN granted_on_call BIGINT NOT NULL DEFAULT 0,
                ADD COLUMN succeeded BIGINT NOT NULL DEFAULT 0,
                ADD COLUMN failed BIGINT NOT NULL DEFAULT 0,
                ADD COLUMN amount_cents BIGINT NOT NULL DEFAULT 0,
                ADD COLUMN refunded_cents BIGINT NOT NULL DEFAULT 0,
                ADD COLUMN dispute TEXT NOT NULL DEFAULT 'none',
                ADD COLUMN reversed BIGINT NOT NULL DEFAULT 0,
                ADD COLUMN credits_granted BIGINT NOT NULL DEFAULT 0,
                ADD COLUMN credits_reversed BIGINT NOT NULL DEFAULT 0
            """,
            "UPDATE credit_purchases SET granted_on_call = 1, credits_granted = credits",
        ]),
        // Credit lots: see the SQLite migration of the same name.
        ("v8-credit-lots", [
            """
            CREATE TABLE credit_lots (
                id BIGSERIAL PRIMARY KEY,
                user_id TEXT NOT NULL,
                category TEXT NOT NULL,
                source TEXT NOT NULL,
                granted BIGINT NOT NULL CHECK (granted > 0),
                remaining BIGINT NOT NULL CHECK (remaining >= 0),
                expires_at BIGINT,
                created_at BIGINT NOT NULL)
            """,
            "CREATE INDEX credit_lots_open ON credit_lots (user_id) WHERE remaining > 0",
            "CREATE INDEX credit_lots_expiring ON credit_lots (expires_at) WHERE remaining > 0",
            "ALTER TABLE credit_transactions ADD COLUMN lots TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE file_uploads ADD COLUMN lots TEXT NOT NULL DEFAULT ''",
            "INSERT INTO platform_accounts (name, balance, updated_at) VALUES ('expired', 0, 0) ON CONFLICT DO NOTHING",
            """
            INSERT INTO credit_lots (user_id, category, source, granted, remaining, expires_at, created_at)
            SELECT user_id, 'paid', 'before-lots', balance, balance, NULL, updated_at FROM user_credits WHERE balance > 0
            """,
        ]),
        // Indexes that do not mention `remaining`: burning a lot updates no index (HOT updates).
        ("v9-lot-indexes", [
            "DROP INDEX credit_lots_open",
            "DROP INDEX credit_lots_expiring",
            "CREATE INDEX credit_lots_by_user ON credit_lots (user_id)",
            "CREATE INDEX credit_lots_by_expiry ON credit_lots (expires_at)",
        ]),
        // Refunds named one by one: see the SQLite migration of the same name.
        ("v10-payment-refunds", [
            "ALTER TABLE credit_purchases ADD COLUMN refunds TEXT NOT NULL DEFAULT ''",
        ]),
        // A file upload is paid for once, whichever way: see the SQLite migration of the same name.
        // A claimed key's placeholder (outcome '') lives only inside its ledger transaction; the
        // filter keeps one out should it ever be seen.
        ("v11-file-keys", [
            """
            INSERT INTO idempotency_keys (key, request_hash, outcome, created_at)
            SELECT 'file:' || substr(key, strpos(key, ':') + 1), request_hash, outcome, created_at FROM idempotency_keys
            WHERE outcome <> '' AND (left(key, 6) = 'spend:' OR left(key, 7) = 'upload:' OR left(key, 10) = 'sponsored:')
            ORDER BY created_at, key
            ON CONFLICT (key) DO NOTHING
            """,
        ]),
    ]

    /// Before migrating: the search_path must name a schema that exists (PostgreSQL would say
    /// only "no schema has been selected to create in"), and, with `requireLedger`, the ledger's
    /// tables must be in it already.
    static func checkSchema(_ client: PostgresClient, searchPath: String?, requireLedger: Bool, logger: Logger) async throws {
        var schema: String?
        var hasLedger = false
        for try await (name, ledger) in try await client.query("""
            SELECT current_schema(), to_regclass('schema_migrations') IS NOT NULL AND to_regclass('credit_transactions') IS NOT NULL
            """, logger: logger).decode((String?, Bool).self) {
            schema = name
            hasLedger = ledger
        }
        guard let schema else {
            throw PostgresStoreError(searchPath.map { "schema \($0) (search_path) does not exist: create it first (CREATE SCHEMA \($0))" }
                ?? "no schema of the search_path exists to keep the tables in")
        }
        if requireLedger, !hasLedger {
            throw NoLedgerError("schema \(schema) has no ledger tables")
        }
    }

    static func migrate(_ client: PostgresClient, logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { conn in
            // One migrator at a time per schema across instances; the lock ends with the
            // transaction. Keyed by the schema, so that schemas of one database (the tests make
            // one per store, dozens at once) do not wait for each other's migrations: under one
            // lock for all, a loaded machine made the last of them wait past its 60 s.
            try await conn.query("SELECT pg_advisory_xact_lock(7261536, hashtext(coalesce(current_schema(), '')))", logger: logger)
            try await conn.query("""
                CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)
                """, logger: logger)
            var applied = Set<String>()
            for try await version in try await conn.query("SELECT version FROM schema_migrations", logger: logger).decode(String.self) {
                applied.insert(version)
            }
            for migration in migrations where !applied.contains(migration.version) {
                for statement in migration.sql {
                    try await conn.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await conn.query("""
                    INSERT INTO schema_migrations (version, applied_at)
                    VALUES (\(migration.version), (extract(epoch from now()) * 1000)::bigint)
                    """, logger: logger)
            }
        }
    }
}
