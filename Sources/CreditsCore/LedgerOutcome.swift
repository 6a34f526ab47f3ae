public struct PurchaseReceipt: Sendable, Codable, Equatable {
    public var purchaseId: String
    public var userId: String
    public var package: String
    public var credits: Int64
    public var baseCredits: Int64
    public var bonusCredits: Int64
    public var priceCents: Int64
    public var paymentMethod: PaymentMethod
    public var paymentId: String
    public var status: String
    /// The buyer's available balance right after this purchase.
    public var balance: Int64
    /// Credits of this purchase that went to repay arrears first (absent when none).
    public var arrearsRepaid: Int64?

    public init(purchaseId: String, userId: String, package: String, credits: Int64, baseCredits: Int64,
                bonusCredits: Int64, priceCents: Int64, paymentMethod: PaymentMethod, paymentId: String,
                status: String, balance: Int64, arrearsRepaid: Int64? = nil) {
        self.arrearsRepaid = arrearsRepaid
        self.purchaseId = purchaseId
        self.userId = userId
        self.package = package
        self.credits = credits
        self.baseCredits = baseCredits
        self.bonusCredits = bonusCredits
        self.priceCents = priceCents
        self.paymentMethod = paymentMethod
        self.paymentId = paymentId
        self.status = status
        self.balance = balance
    }
}

public struct SpendReceipt: Sendable, Codable, Equatable {
    public var transactionId: String
    public var userId: String
    public var credits: Int64
    public var fileUploadId: String
    public var balance: Int64

    public init(transactionId: String, userId: String, credits: Int64, fileUploadId: String, balance: Int64) {
        self.transactionId = transactionId
        self.userId = userId
        self.credits = credits
        self.fileUploadId = fileUploadId
        self.balance = balance
    }
}

public struct AdjustmentReceipt: Sendable, Codable, Equatable {
    public var transactionId: String
    public var adjustmentId: String
    public var userId: String
    public var credits: Int64
    public var balance: Int64

    public init(transactionId: String, adjustmentId: String, userId: String, credits: Int64, balance: Int64) {
        self.transactionId = transactionId
        self.adjustmentId = adjustmentId
        self.userId = userId
        self.credits = credits
        self.balance = balance
    }
}

/// A queued upload and its hold.
public struct UploadReceipt: Sendable, Codable, Equatable {
    public var uploadId: String
    public var userId: String
    public var status: String
    public var creditsReserved: Int64
    public var sponsored: Bool
    /// The user's available balance right after the hold.
    public var balance: Int64

    public init(uploadId: String, userId: String, status: String, creditsReserved: Int64, sponsored: Bool, balance: Int64) {
        self.uploadId = uploadId
        self.userId = userId
        self.status = status
        self.creditsReserved = creditsReserved
        self.sponsored = sponsored
        self.balance = balance
    }
}

/// A settled upload: its hold captured (`confirmed`) or released (`refunded`).
public struct SettleReceipt: Sendable, Codable, Equatable {
    public var transactionId: String
    public var uploadId: String
    public var userId: String
    public var credits: Int64
    public var status: String
    public var balance: Int64

    public init(transactionId: String, uploadId: String, userId: String, credits: Int64, status: String, balance: Int64) {
        self.transactionId = transactionId
        self.uploadId = uploadId
        self.userId = userId
        self.credits = credits
        self.status = status
        self.balance = balance
    }
}

public struct MilestoneReceipt: Sendable, Codable, Equatable {
    public var transactionId: String
    public var userId: String
    public var milestone: String
    public var credits: Int64
    public var balance: Int64

    public init(transactionId: String, userId: String, milestone: String, credits: Int64, balance: Int64) {
        self.transactionId = transactionId
        self.userId = userId
        self.milestone = milestone
        self.credits = credits
        self.balance = balance
    }
}

public struct SponsoredUploadReceipt: Sendable, Codable, Equatable {
    public var transactionId: String
    public var userId: String
    public var fileUploadId: String
    public var credits: Int64
    public var remainingSponsored: Int
    /// The creator's available balance, untouched by a sponsorship.
    public var balance: Int64

    public init(transactionId: String, userId: String, fileUploadId: String, credits: Int64, remainingSponsored: Int, balance: Int64) {
        self.transactionId = transactionId
        self.userId = userId
        self.fileUploadId = fileUploadId
        self.credits = credits
        self.remainingSponsored = remainingSponsored
        self.balance = balance
    }
}

/// What an expiry sweep did for one user.
public struct ExpiryReceipt: Sendable, Codable, Equatable {
    public var userId: String
    /// Credits of expired lots moved to the expiry account now (0: nothing had expired, or an
    /// earlier operation of the same batch swept them).
    public var credits: Int64
    public var balance: Int64

    public init(userId: String, credits: Int64, balance: Int64) {
        self.userId = userId
        self.credits = credits
        self.balance = balance
    }
}

/// What an operation did. A rejection (insufficient credits) is an outcome too: it is remembered
/// under the operation's keys so that a retry can never flip it.
public enum LedgerOutcome: Sendable, Codable, Equatable {
    case purchased(PurchaseReceipt)
    case spent(SpendReceipt)
    case adjusted(AdjustmentReceipt)
    case queued(UploadReceipt)
    case settled(SettleReceipt)
    case milestoneGranted(MilestoneReceipt)
    case sponsoredUpload(SponsoredUploadReceipt)
    case paymentEvent(PaymentEventReceipt)
    case expired(ExpiryReceipt)
    case rejected(CreditsError)
}

/// An outcome and whether it was first produced by an earlier request with the same key.
public struct OperationResult: Sendable, Equatable {
    public var outcome: LedgerOutcome
    public var replayed: Bool

    public init(outcome: LedgerOutcome, replayed: Bool) {
        self.outcome = outcome
        self.replayed = replayed
    }
}
