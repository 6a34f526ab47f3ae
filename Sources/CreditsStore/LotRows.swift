import CreditsCore

/// `credit_lots` rows: the columns both stores read and write.
enum LotRows {
    static let columns = "id, user_id, category, source, granted, remaining, expires_at, created_at"

    /// A page of one user's lots (parameters: userId, afterId, limit).
    static let page = "SELECT \(columns) FROM credit_lots WHERE user_id = ? AND id > ? ORDER BY id LIMIT ?"

    static func checkPageLimit(_ limit: Int) throws(CreditsError) {
        if limit < 1 { throw .validation("limit", "must be at least 1") }
    }

    static func decode(_ v: [SQLValue]) throws -> CreditLot {
        guard v.count == 8, let category = LotCategory(rawValue: v[2].text) else {
            throw StoreInvariantError(description: "a credit_lots row that is not a lot")
        }
        return CreditLot(id: v[0].int, userId: v[1].text, category: category, source: v[3].text, granted: v[4].int,
                         remaining: v[5].int, expiresAtMs: v[6] == .null ? nil : v[6].int, createdAtMs: v[7].int)
    }

    /// For one user (parameters: now, now, soon, now, userId): credits of expired lots not yet
    /// swept, credits expiring before `soon`, and the next expiry.
    static let expirySummary = """
        SELECT CAST(COALESCE(SUM(CASE WHEN expires_at <= ? THEN remaining END), 0) AS BIGINT),
               CAST(COALESCE(SUM(CASE WHEN expires_at > ? AND expires_at <= ? THEN remaining END), 0) AS BIGINT),
               MIN(CASE WHEN expires_at > ? THEN expires_at END)
        FROM credit_lots WHERE user_id = ? AND remaining > 0
        """

    /// A user's balances as they read now: expired lots are unspendable before any sweep.
    static func credits(userId: String, balance: Int64, reserved: Int64, totalEarned: Int64, totalSpent: Int64,
                        totalPurchased: Int64, expiredUnswept: Int64, expiringSoon: Int64, nextExpiryAtMs: Int64?) -> UserCredits {
        var c = UserCredits(userId: userId, balance: balance - expiredUnswept, reserved: reserved, totalEarned: totalEarned,
                            totalSpent: totalSpent, totalPurchased: totalPurchased)
        c.expiringSoon = expiringSoon
        c.nextExpiryAtMs = nextExpiryAtMs
        return c
    }

    /// Users with credits in expired lots (parameters: now, limit).
    static let expiredUsers = "SELECT DISTINCT user_id FROM credit_lots WHERE remaining > 0 AND expires_at <= ? ORDER BY user_id LIMIT ?"

    /// Lots named by the holds of uploads the batch releases (they may be empty now).
    static func heldLotIds(_ holds: [String: UploadHold]) -> [Int64] {
        Array(Set(holds.values.flatMap { $0.lots.parts.map(\.lotId) })).sorted()
    }
}
