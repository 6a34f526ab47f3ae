/// What the store counts for the platform report, over a window starting at `sinceMs`.
public struct PlatformTotals: Sendable, Equatable {
    public var purchases: Int
    public var revenueCents: Int64
    public var creditsSold: Int64
    /// Spends and captured uploads.
    public var creditsSpent: Int64
    /// Every user's available plus held credits now: what the platform owes in uploads.
    public var creditsOutstanding: Int64
    public var activeUsers: Int
    public var payingUsers: Int
    /// Money returned on the window's purchases: refunds, open disputes, reversals.
    public var refundsCents: Int64
    public var confirmedUploads: Int
    public var uploadCreditsCharged: Int64

    public init(purchases: Int = 0, revenueCents: Int64 = 0, creditsSold: Int64 = 0, creditsSpent: Int64 = 0,
                creditsOutstanding: Int64 = 0, activeUsers: Int = 0, payingUsers: Int = 0, refundsCents: Int64 = 0,
                confirmedUploads: Int = 0, uploadCreditsCharged: Int64 = 0) {
        self.refundsCents = refundsCents
        self.purchases = purchases
        self.revenueCents = revenueCents
        self.creditsSold = creditsSold
        self.creditsSpent = creditsSpent
        self.creditsOutstanding = creditsOutstanding
        self.activeUsers = activeUsers
        self.payingUsers = payingUsers
        self.confirmedUploads = confirmedUploads
        self.uploadCreditsCharged = uploadCreditsCharged
    }
}

/// One day of the platform's activity (UTC days since 1970).
public struct DailyTotals: Sendable, Equatable {
    public var day: Int64
    public var revenueCents: Int64
    public var creditsSold: Int64
    public var creditsSpent: Int64

    public init(day: Int64, revenueCents: Int64 = 0, creditsSold: Int64 = 0, creditsSpent: Int64 = 0) {
        self.day = day
        self.revenueCents = revenueCents
        self.creditsSold = creditsSold
        self.creditsSpent = creditsSpent
    }
}

/// Card processing fees: a rate in basis points of each purchase plus a fixed part per purchase.
public struct PaymentFeeSchedule: Sendable, Equatable {
    public var basisPoints: Int64
    public var fixedCents: Int64

    public init(basisPoints: Int64, fixedCents: Int64) {
        self.basisPoints = basisPoints
        self.fixedCents = fixedCents
    }

    /// Stripe's published card rate: 2.9% + 30¢.
    public static let stripe = PaymentFeeSchedule(basisPoints: 290, fixedCents: 30)

    /// The fee on one purchase, rounded half up to the cent.
    public func feeCents(priceCents: Int64) -> Int64 {
        (priceCents * basisPoints + 5_000) / 10_000 + fixedCents
    }
}

/// The operator's report (seed: `getPlatformCreditStats`). Money in integer cents; ratios in
/// parts per million.
public struct PlatformStats: Sendable, Codable, Equatable {
    public var days: Int
    public var totalRevenueCents: Int64
    public var refundsCents: Int64
    public var netRevenueCents: Int64
    public var paymentFeesCents: Int64
    public var gasSpentUsdCents: Int64
    public var grossMarginCents: Int64
    /// Gross margin / net revenue.
    public var grossMarginPPM: Int64
    public var purchases: Int
    public var creditsSold: Int64
    public var creditsSpent: Int64
    public var creditsOutstanding: Int64
    public var activeUsers: Int
    public var payingUsers: Int
    /// Paying users / active users.
    public var conversionRatePPM: Int64
    /// Mean credits charged per confirmed upload, in hundredths.
    public var averageUploadCostCreditsHundredths: Int64
    /// The same in USD cents, at the window's revenue per credit sold.
    public var averageUploadCostUsdCents: Int64

    /// - Parameters: `purchasePrices` are the window's purchase prices, for per-purchase fees.
    public static func compute(
        days: Int, totals t: PlatformTotals, purchasePricesCents: [Int64],
        gasSpentUsdCents: Int64, fees: PaymentFeeSchedule
    ) -> PlatformStats {
        let refundsCents = t.refundsCents
        let net = t.revenueCents - refundsCents
        let paymentFees = purchasePricesCents.reduce(Int64(0)) { $0 + fees.feeCents(priceCents: $1) }
        let margin = net - paymentFees - gasSpentUsdCents
        let avgCreditsHundredths = t.confirmedUploads == 0 ? 0 : t.uploadCreditsCharged * 100 / Int64(t.confirmedUploads)
        // cents per upload = (credits per upload) × (revenue cents / credits sold)
        let avgUsdCents = t.confirmedUploads == 0 || t.creditsSold == 0
            ? 0 : t.uploadCreditsCharged * t.revenueCents / (Int64(t.confirmedUploads) * t.creditsSold)
        return PlatformStats(
            days: days, totalRevenueCents: t.revenueCents, refundsCents: refundsCents, netRevenueCents: net,
            paymentFeesCents: paymentFees, gasSpentUsdCents: gasSpentUsdCents, grossMarginCents: margin,
            grossMarginPPM: net == 0 ? 0 : margin * 1_000_000 / net, purchases: t.purchases, creditsSold: t.creditsSold,
            creditsSpent: t.creditsSpent, creditsOutstanding: t.creditsOutstanding, activeUsers: t.activeUsers,
            payingUsers: t.payingUsers,
            conversionRatePPM: t.activeUsers == 0 ? 0 : Int64(t.payingUsers) * 1_000_000 / Int64(t.activeUsers),
            averageUploadCostCreditsHundredths: avgCreditsHundredths, averageUploadCostUsdCents: avgUsdCents)
    }
}
