import CreditsCore
import Crypto
import Logging
import NIOCore
import PostgresNIO

/// Applies a batch of operations in one PostgreSQL transaction, with a fixed number of round
/// trips whatever the batch size (arrays and `unnest`), so that several server instances can share
/// one database and the database stays the judge:
///
/// 1. Claim every key of the batch (`INSERT ... ON CONFLICT DO NOTHING`, sorted): a key another
///    instance is writing makes this one wait for its commit, so concurrent duplicates apply once.
/// 2. Read the records of keys that already existed.
/// 3. Lock the batch's users (`SELECT ... ORDER BY user_id FOR UPDATE`), then the platform rows.
///    Locks are always taken in this order, so instances cannot deadlock on them.
/// 4. Allocate journal and purchase ids, let `BatchPlanner` decide, write its plan: one
///    conditional `UPDATE ... WHERE balance + delta >= 0` per user, journal and purchase rows,
///    key outcomes, platform balances once per batch.
enum PostgresLedgerWriter {
    static func apply(
        _ ops: [PreparedOperation], conn: PostgresConnection, catalog: Catalog, sponsorship rules: SponsorshipRules,
        lotRules: LotRules, nowMs: Int64, logger: Logger
    ) async throws -> [Result<OperationResult, any Error>] {
        // 1. Claim keys, each with the hash of the first operation that names it.
        var firstHash: [String: [UInt8]] = [:]
        for op in ops { for key in op.keys where firstHash[key] == nil { firstHash[key] = op.requestHash } }
        let keys = firstHash.keys.sorted()
        let hashes = keys.map { ByteBuffer(bytes: firstHash[$0]!) }
        var claimed = Set<String>()
        for try await key in try await conn.query("""
            INSERT INTO idempotency_keys (key, request_hash, outcome, created_at)
            SELECT k, h, '', \(nowMs) FROM unnest(\(keys)::text[], \(hashes)::bytea[]) AS t(k, h) ORDER BY k
            ON CONFLICT (key) DO NOTHING RETURNING key
            """, logger: logger).decode(String.self) {
            claimed.insert(key)
        }

        // 2. Records of keys that existed.
        var existing: [String: KeyRecord] = [:]
        let known = keys.filter { !claimed.contains($0) }
        if !known.isEmpty {
            for try await (key, hash, outcome) in try await conn.query("""
                SELECT key, request_hash, outcome FROM idempotency_keys WHERE key = ANY(\(known)::text[])
                """, logger: logger).decode((String, ByteBuffer, String).self) {
                existing[key] = KeyRecord(requestHash: Array(hash.readableBytesView), outcome: try OutcomeCoding.decode(outcome))
            }
            guard existing.count == known.count else {
                throw StoreInvariantError(description: "an idempotency key vanished between claim and read")
            }
        }

        // 3. Payments the batch's purchases and provider events name, one at a time across
        //    instances (a transaction-scoped advisory lock per payment, taken in order, before any
        //    user row), so that a purchase call and its webhook, or two deliveries of an event,
        //    never plan against the same payment at once. Then users whose operations may apply.
        let fresh = ops.filter { $0.keys.allSatisfy { existing[$0] == nil } }
        let paymentKeys = Set(fresh.compactMap(\.operation.paymentKey)).sorted()
        var payments: [PaymentKey: PaymentState] = [:]
        if !paymentKeys.isEmpty {
            let lockIds = Set(paymentKeys.map(Self.lockId)).sorted()
            try await conn.query("SELECT pg_advisory_xact_lock(k) FROM unnest(\(lockIds)::bigint[]) AS t(k) ORDER BY k", logger: logger)
            let rows = try await conn.query("""
                SELECT \(unescaped: PaymentRows.columns) FROM credit_purchases
                WHERE payment_method || ':' || payment_id = ANY(\(paymentKeys.map(\.description))::text[])
                """, logger: logger)
            for try await row in rows {
                let state = try PaymentRows.decode(try row.map(PostgresStore.value))
                payments[state.key] = state
            }
        }
        var userSet = Set(fresh.map(\.operation.userId).filter { !$0.isEmpty })
        for state in payments.values { if let owner = state.userId { userSet.insert(owner) } }
        let users = userSet.sorted()
        var balances: [String: Int64] = [:]
        var reserved: [String: Int64] = [:]
        if !users.isEmpty {
            for try await (user, balance, held) in try await conn.query("""
                SELECT user_id, balance, reserved FROM user_credits WHERE user_id = ANY(\(users)::text[])
                ORDER BY user_id FOR UPDATE
                """, logger: logger).decode((String, Int64, Int64).self) {
                balances[user] = balance
                reserved[user] = held
            }
        }
        // The users' open lots: stable now, since only a writer holding the user's row changes them.
        var lots: [CreditLot] = []
        if !users.isEmpty {
            for try await row in try await conn.query("""
                SELECT \(unescaped: LotRows.columns) FROM credit_lots WHERE user_id = ANY(\(users)::text[]) AND remaining > 0
                """, logger: logger) {
                lots.append(try LotRows.decode(try row.map(PostgresStore.value)))
            }
        }
        // Creators of new uploads (sponsorship), locked after the balances.
        var profiles: [String: UserProfile] = [:]
        let creators = Set(ops.filter { $0.operation.mayBeSponsored }.map(\.operation.userId)).sorted()
        if !creators.isEmpty {
            for try await (user, wallet, signed, used) in try await conn.query("""
                SELECT user_id, wallet_address, signed_up_at, sponsored_used FROM users WHERE user_id = ANY(\(creators)::text[])
                ORDER BY user_id FOR UPDATE
                """, logger: logger).decode((String, String?, Int64, Int64).self) {
                profiles[user] = UserProfile(userId: user, walletAddress: wallet, signedUpAtMs: signed, sponsoredUploadsUsed: Int(used))
            }
        }
        // Uploads that captures and releases settle, locked after their users.
        var uploads: [String: UploadHold] = [:]
        let settled = Set(ops.compactMap(\.operation.settledUploadId)).sorted()
        if !settled.isEmpty {
            for try await (id, user, credits, status, sponsored, held, batch) in try await conn.query("""
                SELECT upload_id, user_id, credits_reserved, status, sponsored, lots, batch_id FROM file_uploads
                WHERE upload_id = ANY(\(settled)::text[]) ORDER BY upload_id FOR UPDATE
                """, logger: logger).decode((String, String, Int64, String, Int64, String, String?).self) {
                // An unknown status reads as settled.
                uploads[id] = UploadHold(userId: user, credits: credits, status: UploadRecord.Status(rawValue: status) ?? .confirmed,
                                         batchId: batch, sponsored: sponsored != 0, lots: LotUsage(text: held) ?? LotUsage())
            }
            // Lots those holds took from that are empty now.
            let loaded = Set(lots.map(\.id))
            let missing = LotRows.heldLotIds(uploads).filter { !loaded.contains($0) }
            if !missing.isEmpty {
                for try await row in try await conn.query("""
                    SELECT \(unescaped: LotRows.columns) FROM credit_lots WHERE id = ANY(\(missing)::bigint[])
                    """, logger: logger) {
                    lots.append(try LotRows.decode(try row.map(PostgresStore.value)))
                }
            }
        }
        var platform: [PlatformAccount: Int64] = [:]
        for try await (name, balance) in try await conn.query(
            "SELECT name, balance FROM platform_accounts ORDER BY name FOR UPDATE", logger: logger
        ).decode((String, Int64).self) {
            if let account = PlatformAccount(rawValue: name) { platform[account] = balance }
        }

        // 4. Ids (at most four journal rows per operation: a payment's grant, bonus and take-back and
        //    its user's expiry sweep; one purchase; two lots; unused ones are gaps).
        var txnIds: [Int64] = []
        var purchaseIds: [Int64] = []
        let purchaseCount = ops.filter { $0.operation.paymentKey != nil }.count
        for try await id in try await conn.query("""
            SELECT nextval('credit_transactions_id_seq') FROM generate_series(1, \(4 * ops.count))
            """, logger: logger).decode(Int64.self) {
            txnIds.append(id)
        }
        if purchaseCount > 0 {
            for try await id in try await conn.query("""
                SELECT nextval('credit_purchases_id_seq') FROM generate_series(1, \(purchaseCount))
                """, logger: logger).decode(Int64.self) {
                purchaseIds.append(id)
            }
        }
        // Lot ids: at most two new lots per operation that can grant.
        var lotIds: [Int64] = []
        let grants = ops.filter {
            switch $0.operation {
            case .purchase, .paymentEvent, .milestone, .adjust, .release: true
            default: false
            }
        }.count
        if grants > 0 {
            for try await id in try await conn.query("""
                SELECT nextval('credit_lots_id_seq') FROM generate_series(1, \(2 * grants))
                """, logger: logger).decode(Int64.self) {
                lotIds.append(id)
            }
        }
        var lotIterator = lotIds.makeIterator()
        var txnIterator = txnIds.makeIterator()
        var purchaseIterator = purchaseIds.makeIterator()
        let plan = BatchPlanner(catalog: catalog, lotRules: lotRules).plan(
            ops.map(\.keyed), existingKeys: existing, balances: balances, reserved: reserved, uploads: uploads,
            payments: payments, lots: lots, nowMs: nowMs,
            sponsorship: try await sponsorshipState(ops, conn: conn, rules: rules, profiles: profiles, nowMs: nowMs, logger: logger),
            platformBalances: platform,
            nextTransactionId: { txnIterator.next()! }, nextPurchaseId: { purchaseIterator.next()! },
            nextLotId: { lotIterator.next()! })

        try await write(plan, existingUsers: balances, claimed: claimed, conn: conn, nowMs: nowMs, logger: logger)
        return plan.results.map { $0.mapError { $0 as any Error } }
    }

    private static func write(
        _ plan: BatchPlan, existingUsers: [String: Int64], claimed: Set<String>, conn: PostgresConnection,
        nowMs: Int64, logger: Logger
    ) async throws {
        let updates = plan.users.filter { existingUsers[$0.userId] != nil }
        let inserts = plan.users.filter { existingUsers[$0.userId] == nil }
        if !updates.isEmpty {
            var after: [String: Int64] = [:]
            for try await (user, balance) in try await conn.query("""
                UPDATE user_credits AS u SET balance = u.balance + d.delta, reserved = u.reserved + d.held,
                    total_earned = u.total_earned + d.earned,
                    total_spent = u.total_spent + d.spent, total_purchased = u.total_purchased + d.purchased,
                    updated_at = \(nowMs)
                FROM unnest(\(updates.map(\.userId))::text[], \(updates.map(\.balance))::bigint[],
                            \(updates.map(\.reserved))::bigint[],
                            \(updates.map(\.earned))::bigint[], \(updates.map(\.spent))::bigint[],
                            \(updates.map(\.purchased))::bigint[], \(updates.map(\.floor))::bigint[])
                    AS d(user_id, delta, held, earned, spent, purchased, floor)
                WHERE u.user_id = d.user_id AND u.balance + d.delta >= d.floor AND u.reserved + d.held >= 0
                RETURNING u.user_id, u.balance
                """, logger: logger).decode((String, Int64).self) {
                after[user] = balance
            }
            for u in updates where after[u.userId] != u.balanceBefore + u.balance {
                throw StoreInvariantError(description: "user \(u.userId): balance moved under the writer")
            }
        }
        if !inserts.isEmpty {
            // A user created by another instance meanwhile makes this fail (unique violation);
            // the batch is retried and then sees the row.
            var count = 0
            for try await _ in try await conn.query("""
                INSERT INTO user_credits (user_id, balance, reserved, total_earned, total_spent, total_purchased, created_at, updated_at)
                SELECT d.user_id, d.delta, d.held, d.earned, d.spent, d.purchased, \(nowMs), \(nowMs)
                FROM unnest(\(inserts.map(\.userId))::text[], \(inserts.map(\.balance))::bigint[],
                            \(inserts.map(\.reserved))::bigint[],
                            \(inserts.map(\.earned))::bigint[], \(inserts.map(\.spent))::bigint[],
                            \(inserts.map(\.purchased))::bigint[], \(inserts.map(\.floor))::bigint[])
                    AS d(user_id, delta, held, earned, spent, purchased, floor)
                WHERE d.delta >= d.floor AND d.held >= 0
                RETURNING user_id
                """, logger: logger) {
                count += 1
            }
            guard count == inserts.count else { throw StoreInvariantError(description: "a new user row was refused") }
        }
        if !plan.journal.isEmpty {
            let j = plan.journal
            try await conn.query("""
                INSERT INTO credit_transactions (id, kind, user_id, debit_account, credit_account, amount,
                    debit_balance_after, credit_balance_after, reference, description, lots, created_at)
                SELECT *, \(nowMs)::bigint FROM unnest(\(j.map(\.id))::bigint[], \(j.map(\.kind.rawValue))::text[],
                    \(j.map(\.userId))::text[], \(j.map(\.debit.id))::text[], \(j.map(\.credit.id))::text[],
                    \(j.map(\.amount))::bigint[], \(j.map(\.debitBalanceAfter))::bigint[],
                    \(j.map(\.creditBalanceAfter))::bigint[], \(j.map(\.reference))::text[], \(j.map(\.description))::text[],
                    \(j.map(\.lots))::text[])
                """, logger: logger)
        }
        if !plan.lots.isEmpty {
            let l = plan.lots
            try await conn.query("""
                UPDATE credit_lots AS c SET granted = d.g, remaining = d.r
                FROM unnest(\(l.map(\.id))::bigint[], \(l.map(\.granted))::bigint[], \(l.map(\.remaining))::bigint[]) AS d(i, g, r)
                WHERE c.id = d.i
                """, logger: logger)
        }
        if !plan.newLots.isEmpty {
            let l = plan.newLots
            try await conn.query("""
                INSERT INTO credit_lots (\(unescaped: LotRows.columns))
                SELECT i, u, c, s, g, r, NULLIF(e, -1), t FROM unnest(\(l.map(\.id))::bigint[], \(l.map(\.userId))::text[],
                    \(l.map(\.category.rawValue))::text[], \(l.map(\.source))::text[], \(l.map(\.granted))::bigint[],
                    \(l.map(\.remaining))::bigint[], \(l.map { $0.expiresAtMs ?? -1 })::bigint[], \(l.map(\.createdAtMs))::bigint[])
                    AS x(i, u, c, s, g, r, e, t)
                """, logger: logger)
        }
        for p in plan.payments {
            var bindings = PostgresBindings()
            for value in PaymentRows.values(p, nowMs: nowMs) {
                switch value {
                case .int(let v): bindings.append(v)
                case .text(let t): bindings.append(t)
                }
            }
            let placeholders = (1...bindings.count).map { "$\($0)" }.joined(separator: ", ")
            try await conn.query(PostgresQuery(unsafeSQL: """
                INSERT INTO credit_purchases (\(PaymentRows.upsertColumns)) VALUES (\(placeholders))
                \(PaymentRows.upsertConflict)
                """, binds: bindings), logger: logger)
        }
        try await writeUploads(plan.uploads, conn: conn, nowMs: nowMs, logger: logger)
        try await writeSponsorship(plan, conn: conn, nowMs: nowMs, logger: logger)
        // Fill the placeholders this batch claimed; a key held by someone else's finished record
        // is not overwritten, and the count check rolls the batch back.
        if !plan.newKeys.isEmpty {
            let k = plan.newKeys
            var written = 0
            for try await _ in try await conn.query("""
                INSERT INTO idempotency_keys (key, request_hash, outcome, created_at)
                SELECT k, h, o, \(nowMs) FROM unnest(\(k.map(\.key))::text[], \(k.map { ByteBuffer(bytes: $0.requestHash) })::bytea[],
                    \(k.map { OutcomeCoding.encode($0.outcome) })::text[]) AS t(k, h, o)
                ON CONFLICT (key) DO UPDATE SET request_hash = EXCLUDED.request_hash, outcome = EXCLUDED.outcome
                WHERE idempotency_keys.outcome = ''
                RETURNING key
                """, logger: logger) {
                written += 1
            }
            guard written == k.count else { throw StoreInvariantError(description: "an idempotency key was taken meanwhile") }
        }
        let unused = claimed.subtracting(plan.newKeys.map(\.key)).sorted()
        if !unused.isEmpty {
            try await conn.query("DELETE FROM idempotency_keys WHERE key = ANY(\(unused)::text[]) AND outcome = ''", logger: logger)
        }
        if !plan.platformBalances.isEmpty {
            let names = plan.platformBalances.keys.map(\.rawValue)
            let values = plan.platformBalances.keys.map { plan.platformBalances[$0]! }
            try await conn.query("""
                UPDATE platform_accounts AS p SET balance = d.balance, updated_at = \(nowMs)
                FROM unnest(\(names)::text[], \(values)::bigint[]) AS d(name, balance) WHERE p.name = d.name
                """, logger: logger)
        }
    }
}

extension PostgresLedgerWriter {
    /// The advisory lock of a payment: the first 8 bytes of SHA-256 of its key (a collision only
    /// serializes two payments that did not need it).
    static func lockId(_ key: PaymentKey) -> Int64 {
        let digest = Array(SHA256.hash(data: Array("payment:\(key)".utf8)))
        return digest[0..<8].reduce(Int64(0)) { $0 << 8 | Int64($1) }
    }

    static func writeUploads(_ changes: [UploadChange], conn: PostgresConnection, nowMs: Int64, logger: Logger) async throws {
        for change in changes {
            switch change {
            case .created(let r, let credits, let sponsored, let lots):
                try await conn.query("""
                    INSERT INTO file_uploads (upload_id, user_id, file_type, file_count, features, size_bytes, priority,
                        credits_reserved, status, sponsored, created_at, updated_at, lots)
                    VALUES (\(r.uploadId), \(r.userId), \(r.fileType), \(Int64(r.fileCount)), \(r.features.joined(separator: ",")),
                        \(r.sizeBytes), \(r.priority.rawValue), \(credits), 'queued', \(Int64(sponsored ? 1 : 0)), \(nowMs), \(nowMs), \(lots.text))
                    """, logger: logger)
            case .captured(let uploadId, let credits):
                try await conn.query("""
                    UPDATE file_uploads SET status = 'confirmed', credits_charged = \(credits), failure_reason = NULL,
                        updated_at = \(nowMs)
                    WHERE upload_id = \(uploadId)
                    """, logger: logger)
            case .released(let uploadId, let reason):
                try await conn.query("""
                    UPDATE file_uploads SET status = 'refunded', failure_reason = COALESCE(NULLIF(\(reason), ''), failure_reason),
                        updated_at = \(nowMs) WHERE upload_id = \(uploadId)
                    """, logger: logger)
            }
        }
    }
}

extension PostgresLedgerWriter {
    /// Read after the platform rows are locked, so batches of all instances see the budget in turn.
    static func sponsorshipState(
        _ ops: [PreparedOperation], conn: PostgresConnection, rules: SponsorshipRules, profiles: [String: UserProfile],
        nowMs: Int64, logger: Logger
    ) async throws -> SponsorshipState? {
        guard SponsorshipBudget.needed(ops) else { return nil }
        var used: Int64 = 0
        for try await value in try await conn.query(
            "SELECT used FROM sponsorship_budget WHERE month = \(SponsorshipBudget.month(nowMs))", logger: logger
        ).decode(Int64.self) {
            used = value
        }
        return SponsorshipState(rules: rules, profiles: profiles, budgetRemaining: rules.monthlyBudgetCredits - used, nowMs: nowMs)
    }

    static func writeSponsorship(_ plan: BatchPlan, conn: PostgresConnection, nowMs: Int64, logger: Logger) async throws {
        for (user, delta) in plan.sponsoredSlots.sorted(by: { $0.key < $1.key }) where delta != 0 {
            var changed = 0
            for try await _ in try await conn.query("""
                UPDATE users SET sponsored_used = sponsored_used + \(Int64(delta)), updated_at = \(nowMs)
                WHERE user_id = \(user) AND sponsored_used + \(Int64(delta)) >= 0 RETURNING user_id
                """, logger: logger) {
                changed += 1
            }
            guard changed == 1 else { throw StoreInvariantError(description: "user \(user): sponsored slots out of step") }
        }
        for r in plan.sponsoredUploads {
            try await conn.query("""
                INSERT INTO sponsored_uploads (file_upload_id, user_id, reason, credits, usd_value_cents, gas_value_cents, created_at)
                VALUES (\(r.fileUploadId), \(r.userId), \(r.reason), \(r.credits), \(r.usdValueCents), \(r.gasValueCents), \(nowMs))
                """, logger: logger)
        }
        let budget = SponsorshipBudget.delta(plan)
        if budget != 0 {
            try await conn.query("""
                INSERT INTO sponsorship_budget (month, used) VALUES (\(SponsorshipBudget.month(nowMs)), \(budget))
                ON CONFLICT (month) DO UPDATE SET used = sponsorship_budget.used + EXCLUDED.used
                """, logger: logger)
        }
    }
}
