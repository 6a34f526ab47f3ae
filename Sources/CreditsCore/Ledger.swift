/// Platform-side accounts. Every credit a user holds came from one of these, so the sum of all
/// balances (users and platform) is always zero.
public enum PlatformAccount: String, Sendable, CaseIterable, Codable {
    /// Issues the paid credits of a purchase.
    case sales
    /// Issues bonus credits: package bonuses, milestones.
    case promotions
    /// Receives credits spent on uploads.
    case uploadFees = "upload_fees"
    /// Counterparty of operator adjustments.
    case adjustments
    /// Pays for sponsored uploads (a new creator's first five).
    case sponsorship
    /// Sponsored credits held by pending uploads.
    case sponsoredHolds = "sponsored_holds"
    /// Receives promotional credits whose lots expired unspent.
    case expired
}

/// A ledger account: a user's, or one of the platform's.
public enum Account: Hashable, Sendable {
    /// A user's available credits.
    case user(String)
    /// A user's credits held by pending uploads (`reserved` in `user_credits`).
    case hold(String)
    case platform(PlatformAccount)

    /// A user's own account (available or held), as opposed to a platform one.
    public var isUserScoped: Bool {
        if case .platform = self { return false }
        return true
    }

    /// The account's id as stored in the journal: `user:<userId>`, `hold:<userId>` or `platform:<name>`.
    public var id: String {
        switch self {
        case .user(let u): "user:\(u)"
        case .hold(let u): "hold:\(u)"
        case .platform(let p): "platform:\(p.rawValue)"
        }
    }
}

/// The kind of a journal row.
public enum JournalKind: String, Sendable, Codable, CaseIterable {
    case purchase
    case purchaseBonus = "purchase_bonus"
    case spend
    case adjustment
    /// Queueing an upload moves its estimate from available to held.
    case uploadHold = "upload_hold"
    /// A confirmed upload's held credits go to the platform.
    case uploadCapture = "upload_capture"
    /// A failed upload's held credits go back to available.
    case uploadRelease = "upload_release"
    /// A milestone bonus from the promotions account.
    case milestone
    /// A sponsored upload's estimate, held from the sponsorship account.
    case sponsoredHold = "sponsored_hold"
    case sponsoredCapture = "sponsored_capture"
    /// A failed sponsored upload's hold goes back to the sponsorship account.
    case sponsoredRelease = "sponsored_release"
    /// An upload paid outright by the sponsorship account (`POST /api/credits/sponsored-uploads`).
    case sponsoredUpload = "sponsored_upload"
    /// Credits a payment takes back: a refund (in proportion), a failure, a dispute, a reversal.
    /// The buyer's balance may go below zero (arrears).
    case paymentReversal = "payment_reversal"
    /// Credits a won dispute gives back.
    case paymentRestore = "payment_restore"
    /// Unspent credits of expired lots, moved to the expiry account.
    case expiry
}

/// One double-entry movement: `amount` leaves `debit` and reaches `credit`. Amount > 0 always.
public struct Posting: Sendable, Equatable {
    public var kind: JournalKind
    public var debit: Account
    public var credit: Account
    public var amount: Int64

    public init(kind: JournalKind, debit: Account, credit: Account, amount: Int64) {
        precondition(amount > 0, "a posting moves a positive amount")
        precondition(debit != credit, "a posting moves between two accounts")
        self.kind = kind
        self.debit = debit
        self.credit = credit
        self.amount = amount
    }
}

/// What an operation will write if the user's balance allows it.
public struct LedgerPlan: Sendable, Equatable {
    /// Change to the user's available balance (negative for a debit).
    public var balanceDelta: Int64
    /// Change to the user's held credits.
    public var reservedDelta: Int64 = 0
    public var purchasedDelta: Int64 = 0
    public var earnedDelta: Int64 = 0
    public var spentDelta: Int64 = 0
    /// Journal rows, in order; exactly one side of each is the user's account.
    public var postings: [Posting]
}

/// The ledger's decisions, free of I/O: what an operation posts, and whether a balance allows it.
public enum LedgerRules {
    /// The postings of an operation that `validate(catalog:)` accepted. `heldCredits` is what
    /// the upload a capture or release settles holds; `sponsored` uploads are held from, and
    /// released to, the platform's sponsorship account and never touch the user's credits.
    public static func plan(_ op: LedgerOperation, catalog: Catalog, heldCredits: Int64 = 0, sponsored: Bool = false) -> LedgerPlan {
        let user = Account.user(op.userId)
        if sponsored {
            switch op {
            case .upload(let r):
                let credits = r.estimate(catalog: catalog).credits
                return LedgerPlan(balanceDelta: 0, postings: [
                    Posting(kind: .sponsoredHold, debit: .platform(.sponsorship), credit: .platform(.sponsoredHolds), amount: credits),
                ])
            case .capture:
                return LedgerPlan(balanceDelta: 0, postings: [
                    Posting(kind: .sponsoredCapture, debit: .platform(.sponsoredHolds), credit: .platform(.uploadFees), amount: heldCredits),
                ])
            case .release:
                return LedgerPlan(balanceDelta: 0, postings: [
                    Posting(kind: .sponsoredRelease, debit: .platform(.sponsoredHolds), credit: .platform(.sponsorship), amount: heldCredits),
                ])
            case .sponsor(let r):
                return LedgerPlan(balanceDelta: 0, postings: [
                    Posting(kind: .sponsoredUpload, debit: .platform(.sponsorship), credit: .platform(.uploadFees), amount: r.credits),
                ])
            default:
                preconditionFailure("only uploads are sponsored")
            }
        }
        switch op {
        case .sponsor:
            preconditionFailure("a sponsorship is always planned as sponsored")
        case .upload(let r):
            let credits = r.estimate(catalog: catalog).credits
            return LedgerPlan(
                balanceDelta: -credits, reservedDelta: credits,
                postings: [Posting(kind: .uploadHold, debit: user, credit: .hold(op.userId), amount: credits)])
        case .capture:
            precondition(heldCredits > 0, "only a held upload is captured")
            return LedgerPlan(
                balanceDelta: 0, reservedDelta: -heldCredits, spentDelta: heldCredits,
                postings: [Posting(kind: .uploadCapture, debit: .hold(op.userId), credit: .platform(.uploadFees), amount: heldCredits)])
        case .release:
            precondition(heldCredits > 0, "only a held upload is released")
            return LedgerPlan(
                balanceDelta: heldCredits, reservedDelta: -heldCredits,
                postings: [Posting(kind: .uploadRelease, debit: .hold(op.userId), credit: user, amount: heldCredits)])
        case .milestone(let r):
            guard let m = catalog.milestone(r.milestone) else { preconditionFailure("validated before planning") }
            return LedgerPlan(
                balanceDelta: m.credits, earnedDelta: m.credits,
                postings: [Posting(kind: .milestone, debit: .platform(.promotions), credit: user, amount: m.credits)])
        case .purchase, .paymentEvent:
            preconditionFailure("payments are planned from their state: PaymentRules and BatchPlanner")
        case .expire:
            preconditionFailure("an expiry sweep is planned by BatchPlanner.expireLots")
        case .spend(let r):
            return LedgerPlan(
                balanceDelta: -r.credits, spentDelta: r.credits,
                postings: [Posting(kind: .spend, debit: user, credit: .platform(.uploadFees), amount: r.credits)])
        case .adjust(let r):
            if r.credits > 0 {
                return LedgerPlan(
                    balanceDelta: r.credits, earnedDelta: r.credits,
                    postings: [Posting(kind: .adjustment, debit: .platform(.adjustments), credit: user, amount: r.credits)])
            }
            return LedgerPlan(
                balanceDelta: r.credits,
                postings: [Posting(kind: .adjustment, debit: user, credit: .platform(.adjustments), amount: -r.credits)])
        }
    }

    /// nil when `available` covers the plan; otherwise the 402 the caller sees. A creator's
    /// operation is answered with the package that covers the shortfall; an operator's negative
    /// adjustment, which no purchase by the creator is asked for, with none.
    public static func check(_ plan: LedgerPlan, available: Int64, catalog: Catalog, suggestPackage: Bool = true) -> CreditsError? {
        if plan.balanceDelta >= 0 || available + plan.balanceDelta >= 0 { return nil }
        if available < 0 { return arrears(owed: -available) }
        return insufficient(required: -plan.balanceDelta, available: available, catalog: suggestPackage ? catalog : nil)
    }

    /// The 402 of a user whose balance a payment reversal left below zero.
    public static func arrears(owed: Int64) -> CreditsError {
        CreditsError(.accountInArrears, "the account owes \(owed) credits after a payment reversal; the next purchase repays them first",
                     owed: owed)
    }

    /// The 402 of a shortfall, with the package that covers it when `catalog` is given.
    public static func insufficient(required: Int64, available: Int64, catalog: Catalog?) -> CreditsError {
        let suggestion = catalog?.suggestedPackage(shortfall: required - max(available, 0))
        return CreditsError(
            .insufficientCredits, "\(required) credits required, \(available) available",
            required: required, available: available, suggestedPackage: suggestion?.id)
    }
}
