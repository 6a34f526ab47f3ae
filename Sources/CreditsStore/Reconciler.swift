import CreditsCore

/// A value of a reconcile query's result.
enum SQLValue: Sendable, Equatable {
    case int(Int64)
    case text(String)
    case null

    var int: Int64 {
        if case .int(let v) = self { return v }
        return 0
    }

    var text: String {
        if case .text(let v) = self { return v }
        return ""
    }
}

/// Checks every ledger invariant of DESIGN.md against the journal, with SQL that SQLite and
/// PostgreSQL both run (sums are cast to BIGINT for PostgreSQL). Read-only.
///
/// 1. Each account's cached balance equals the sum of its journal movements.
/// 2. Each journal row's balance-after equals the running sum of that account's movements.
/// 3. The sum of all balances is zero.
/// 4. No hold is below zero; no user balance is, except arrears a payment reversal created (never
///    more below zero than the credits reversals took from that user).
/// 5. Each user's totals equal the journal rows of their kinds; held credits (`reserved`) equal
///    the user's hold account in the journal.
/// 6. Each payment's credits granted and reversed equal the journal rows it posted, and what the
///    buyer holds from it equals what `PaymentRules` says its facts are worth; its refunded total
///    is no less than the refunds it names.
/// 7. Every account in the journal exists.
/// 8. No operation posted the same kind of row twice (a payment's reversals and restorations aside).
/// 9. Each user's lots with credits left add up to their balance (to zero in arrears).
enum Reconciler {
    /// Run all of these in one read transaction (one snapshot) and pass the rows to `evaluate`.
    static let queries: [String] = [
        "SELECT COUNT(*) FROM credit_transactions",
        """
            SELECT account, CAST(SUM(delta) AS BIGINT) FROM (
                SELECT credit_account AS account, amount AS delta FROM credit_transactions
                UNION ALL SELECT debit_account, -amount FROM credit_transactions) AS m
            GROUP BY account
            """,
        "SELECT user_id, balance, reserved FROM user_credits ORDER BY user_id",
        "SELECT name, balance FROM platform_accounts ORDER BY name",
        """
            SELECT account, id, after, running FROM (
                SELECT account, id, after,
                       CAST(SUM(delta) OVER (PARTITION BY account ORDER BY id ROWS UNBOUNDED PRECEDING) AS BIGINT) AS running
                FROM (SELECT id, credit_account AS account, amount AS delta, credit_balance_after AS after
                      FROM credit_transactions
                      UNION ALL
                      SELECT id, debit_account, -amount, debit_balance_after FROM credit_transactions) AS m) AS r
            WHERE running <> after ORDER BY account, id LIMIT 20
            """,
        """
            SELECT u.user_id, u.total_purchased, u.total_spent, u.total_earned,
                CAST(COALESCE(SUM(CASE WHEN t.kind IN ('purchase', 'purchase_bonus', 'payment_restore') AND t.credit_account = 'user:' || u.user_id THEN t.amount
                    WHEN t.kind = 'payment_reversal' AND t.debit_account = 'user:' || u.user_id THEN -t.amount END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN (t.kind = 'spend' AND t.debit_account = 'user:' || u.user_id)
                    OR t.kind = 'upload_capture' THEN t.amount END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN t.kind IN ('adjustment', 'milestone') AND t.credit_account = 'user:' || u.user_id THEN t.amount END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN t.kind = 'payment_reversal' AND t.debit_account = 'user:' || u.user_id THEN t.amount END), 0) AS BIGINT)
            FROM user_credits u LEFT JOIN credit_transactions t ON t.user_id = u.user_id
            GROUP BY u.user_id, u.total_purchased, u.total_spent, u.total_earned ORDER BY u.user_id
            """,
        """
            WITH posted AS (
                SELECT reference,
                    CAST(SUM(CASE WHEN kind = 'payment_reversal' THEN 0 ELSE amount END) AS BIGINT) AS posted_granted,
                    CAST(SUM(CASE WHEN kind = 'payment_reversal' THEN amount ELSE 0 END) AS BIGINT) AS posted_reversed
                FROM credit_transactions
                WHERE kind IN ('purchase', 'purchase_bonus', 'payment_restore', 'payment_reversal') GROUP BY reference)
            SELECT \(PaymentRows.columns), credits, COALESCE(posted_granted, 0), COALESCE(posted_reversed, 0)
            FROM credit_purchases
            LEFT JOIN posted ON posted.reference = 'purchase:' || payment_method || ':' || payment_id
            ORDER BY id
            """,
        """
            SELECT reference, kind, COUNT(*) FROM credit_transactions
            WHERE kind NOT IN ('payment_reversal', 'payment_restore')
            GROUP BY reference, kind HAVING COUNT(*) > 1 ORDER BY reference LIMIT 20
            """,
        """
            SELECT u.user_id, u.balance, CAST(COALESCE(SUM(l.remaining), 0) AS BIGINT)
            FROM user_credits u LEFT JOIN credit_lots l ON l.user_id = u.user_id AND l.remaining > 0
            GROUP BY u.user_id, u.balance ORDER BY u.user_id
            """,
    ]

    static func evaluate(_ results: [[[SQLValue]]]) -> ReconcileReport {
        precondition(results.count == queries.count, "one result per query")
        var problems: [String] = []
        let journalRows = Int(results[0].first?.first?.int ?? 0)

        var journalSum: [String: Int64] = [:]
        for row in results[1] {
            journalSum[row[0].text] = row[1].int
        }

        var cached: [(account: String, balance: Int64)] = []
        for row in results[2] {
            let account = Account.user(row[0].text).id
            cached.append((account, row[1].int))
            cached.append((Account.hold(row[0].text).id, row[2].int))
            if row[2].int < 0 { problems.append("account \(account): reserved \(row[2].int) is below zero") }
        }
        for row in results[3] {
            cached.append(("platform:\(row[0].text)", row[1].int))
        }
        var balanceProblems: [String] = []
        for (account, balance) in cached where balance != journalSum[account] ?? 0 {
            balanceProblems.append("account \(account): cached balance \(balance) but the journal sums to \(journalSum[account] ?? 0)")
        }
        let known = Set(cached.map(\.account))
        for account in journalSum.keys.sorted() where !known.contains(account) {
            balanceProblems.append("account \(account): in the journal but has no balance row")
        }
        problems.insert(contentsOf: balanceProblems, at: 0)

        let total = cached.reduce(Int64(0)) { $0 + $1.balance }
        if total != 0 { problems.append("ledger: the sum of all balances is \(total), not zero") }

        for row in results[4] {
            problems.append("account \(row[0].text): row txn_\(row[1].int) says balance \(row[2].int) but the running sum is \(row[3].int)")
        }
        var balances: [String: Int64] = [:]
        for row in results[2] { balances[row[0].text] = row[1].int }
        for row in results[5] {
            let account = Account.user(row[0].text).id
            // Arrears: only a payment reversal may leave a user below zero, and by no more than it took.
            let balance = balances[row[0].text] ?? 0
            if balance < 0, -balance > row[7].int {
                problems.append("account \(account): balance \(balance) is below zero beyond the \(row[7].int) credits payment reversals took")
            }
            let names = ["totalPurchased", "totalSpent", "totalEarned"]
            for i in 0..<3 where row[1 + i].int != row[4 + i].int {
                problems.append("account \(account): \(names[i]) is \(row[1 + i].int) but the journal says \(row[4 + i].int)")
            }
        }
        for row in results[6] {
            do {
                problems += try paymentProblems(PaymentRows.decode(Array(row[0..<PaymentRows.count])),
                                                credits: row[PaymentRows.count].int,
                                                postedGranted: row[PaymentRows.count + 1].int,
                                                postedReversed: row[PaymentRows.count + 2].int)
            } catch {
                problems.append("purchase row \(row.first?.int ?? 0): \(error)")
            }
        }
        for row in results[7] {
            problems.append("operation \(row[0].text): \(row[2].int) journal rows of kind \(row[1].text), expected one")
        }
        for row in results[8] where row[2].int != max(row[1].int, 0) {
            problems.append("account \(Account.user(row[0].text).id): its lots hold \(row[2].int) credits but its balance is \(row[1].int)")
        }
        return ReconcileReport(accountsChecked: cached.count, journalRows: journalRows, problems: problems)
    }

    static func paymentProblems(_ p: PaymentState, credits: Int64, postedGranted: Int64, postedReversed: Int64) -> [String] {
        let name = "purchase pur_\(p.id ?? 0) (\(p.key))"
        var problems: [String] = []
        if p.creditsGranted != postedGranted || p.creditsReversed != postedReversed {
            problems.append("\(name): granted \(p.creditsGranted) and reversed \(p.creditsReversed), but the journal says \(postedGranted) and \(postedReversed)")
        }
        let named = p.facts.refunds.values.reduce(0, +)
        if p.facts.refundedCents < named {
            problems.append("\(name): refunded \(p.facts.refundedCents) cents, less than the \(named) of its refunds")
        }
        guard let package = p.package, p.userId != nil else {
            if p.net != 0 { problems.append("\(name): unclaimed but holds \(p.net) credits") }
            return problems
        }
        if credits != package.totalCredits {
            problems.append("\(name): credits \(credits) but base + bonus is \(package.totalCredits)")
        }
        let target = PaymentRules.target(p.facts, package: package)
        if p.net != target {
            problems.append("\(name): the buyer holds \(p.net) credits from it, but its payment facts are worth \(target)")
        }
        return problems
    }
}
