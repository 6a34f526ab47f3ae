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
/// 4. No user balance or hold is below zero.
/// 5. Each user's totals equal the journal rows of their kinds; held credits (`reserved`) equal
///    the user's hold account in the journal.
/// 6. Each purchase's credits equal the journal rows it posted.
/// 7. Every account in the journal exists.
/// 8. No operation posted the same kind of row twice.
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
                CAST(COALESCE(SUM(CASE WHEN t.kind IN ('purchase', 'purchase_bonus') AND t.credit_account = 'user:' || u.user_id THEN t.amount END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN (t.kind = 'spend' AND t.debit_account = 'user:' || u.user_id)
                    OR t.kind = 'upload_capture' THEN t.amount END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN t.kind IN ('adjustment', 'milestone') AND t.credit_account = 'user:' || u.user_id THEN t.amount END), 0) AS BIGINT)
            FROM user_credits u LEFT JOIN credit_transactions t ON t.user_id = u.user_id
            GROUP BY u.user_id, u.total_purchased, u.total_spent, u.total_earned ORDER BY u.user_id
            """,
        """
            WITH posted AS (
                SELECT reference, CAST(SUM(amount) AS BIGINT) AS total FROM credit_transactions
                WHERE kind IN ('purchase', 'purchase_bonus') GROUP BY reference)
            SELECT p.id, p.credits, p.base_credits + p.bonus_credits, COALESCE(posted.total, 0)
            FROM credit_purchases p
            LEFT JOIN posted ON posted.reference = 'purchase:' || p.payment_method || ':' || p.payment_id
            ORDER BY p.id
            """,
        """
            SELECT reference, kind, COUNT(*) FROM credit_transactions
            GROUP BY reference, kind HAVING COUNT(*) > 1 ORDER BY reference LIMIT 20
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
            if row[1].int < 0 { problems.append("account \(account): balance \(row[1].int) is below zero") }
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
        for row in results[5] {
            let account = Account.user(row[0].text).id
            let names = ["totalPurchased", "totalSpent", "totalEarned"]
            for i in 0..<3 where row[1 + i].int != row[4 + i].int {
                problems.append("account \(account): \(names[i]) is \(row[1 + i].int) but the journal says \(row[4 + i].int)")
            }
        }
        for row in results[6] where row[1].int != row[2].int || row[1].int != row[3].int {
            problems.append("purchase pur_\(row[0].int): credits \(row[1].int), base+bonus \(row[2].int), journal \(row[3].int)")
        }
        for row in results[7] {
            problems.append("operation \(row[0].text): \(row[2].int) journal rows of kind \(row[1].text), expected one")
        }
        return ReconcileReport(accountsChecked: cached.count, journalRows: journalRows, problems: problems)
    }
}
