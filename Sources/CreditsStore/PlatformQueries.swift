import CreditsCore

/// The platform report's SQL, run as is by both stores inside one read transaction. Each takes
/// the window start (milliseconds) as its only parameter, written `?` here (PostgreSQL: `$1`).
enum PlatformQueries {
    /// Purchases money was received for, whatever happened afterwards.
    static let paid = "status IN (" + PurchaseStatus.allCases.filter(\.wasPaid).map { "'\($0.rawValue)'" }.joined(separator: ", ") + ")"

    static let queries: [String] = [
        // 0: paid purchases made in the window: count, revenue, credits sold, paying users, and the
        //    money returned on them (refunds up to the price; the whole price while a dispute is
        //    open or after a reversal or lost dispute)
        """
        SELECT COUNT(*), CAST(COALESCE(SUM(price_cents), 0) AS BIGINT), CAST(COALESCE(SUM(credits), 0) AS BIGINT),
               COUNT(DISTINCT user_id),
               CAST(COALESCE(SUM(CASE WHEN status IN ('disputed', 'reversed') THEN price_cents
                   WHEN refunded_cents > price_cents THEN price_cents ELSE refunded_cents END), 0) AS BIGINT)
        FROM credit_purchases WHERE \(paid) AND created_at >= ?
        """,
        // 1: credits spent in the window: spends and captured uploads
        """
        SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM credit_transactions
        WHERE kind IN ('spend', 'upload_capture') AND created_at >= ?
        """,
        // 2: active users: anyone with a journal row in the window
        "SELECT COUNT(DISTINCT user_id) FROM credit_transactions WHERE created_at >= ?",
        // 3: confirmed uploads in the window and the credits they were charged
        """
        SELECT COUNT(*), CAST(COALESCE(SUM(credits_charged), 0) AS BIGINT) FROM file_uploads
        WHERE status = 'confirmed' AND updated_at >= ?
        """,
        // 4: the prices of the window's purchases, for per-purchase payment fees
        "SELECT price_cents FROM credit_purchases WHERE \(paid) AND created_at >= ? ORDER BY id",
        // 5: credits outstanding now (the window does not apply; the parameter is ignored)
        "SELECT CAST(COALESCE(SUM(balance + reserved), 0) AS BIGINT) FROM user_credits WHERE ? IS NOT NULL",
    ]

    /// Per UTC day since the window start: purchases (revenue, credits) and credits spent.
    static let dailyQueries: [String] = [
        """
        SELECT created_at / 86400000 AS day, CAST(SUM(price_cents) AS BIGINT), CAST(SUM(credits) AS BIGINT)
        FROM credit_purchases WHERE \(paid) AND created_at >= ? GROUP BY created_at / 86400000 ORDER BY 1
        """,
        """
        SELECT created_at / 86400000 AS day, CAST(SUM(amount) AS BIGINT) FROM credit_transactions
        WHERE kind IN ('spend', 'upload_capture') AND created_at >= ? GROUP BY created_at / 86400000 ORDER BY 1
        """,
    ]

    static func daily(_ r: [[[SQLValue]]]) -> [DailyTotals] {
        var days: [Int64: DailyTotals] = [:]
        for row in r[0] {
            days[row[0].int, default: DailyTotals(day: row[0].int)].revenueCents = row[1].int
            days[row[0].int]!.creditsSold = row[2].int
        }
        for row in r[1] {
            days[row[0].int, default: DailyTotals(day: row[0].int)].creditsSpent = row[1].int
        }
        return days.values.sorted { $0.day < $1.day }
    }

    static func totals(_ r: [[[SQLValue]]]) -> (PlatformTotals, [Int64]) {
        precondition(r.count == queries.count)
        let p = r[0].first ?? []
        let u = r[3].first ?? []
        let totals = PlatformTotals(
            purchases: Int(p.first?.int ?? 0), revenueCents: p.count > 1 ? p[1].int : 0, creditsSold: p.count > 2 ? p[2].int : 0,
            creditsSpent: r[1].first?.first?.int ?? 0, creditsOutstanding: r[5].first?.first?.int ?? 0,
            activeUsers: Int(r[2].first?.first?.int ?? 0), payingUsers: Int(p.count > 3 ? p[3].int : 0),
            refundsCents: p.count > 4 ? p[4].int : 0,
            confirmedUploads: Int(u.first?.int ?? 0), uploadCreditsCharged: u.count > 1 ? u[1].int : 0)
        return (totals, r[4].map { $0.first?.int ?? 0 })
    }
}
