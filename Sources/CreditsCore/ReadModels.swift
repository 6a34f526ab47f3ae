/// A user's cached balances (seed table `user_credits`). A user never seen has zeros.
public struct UserCredits: Sendable, Codable, Equatable {
    public var userId: String
    /// Available to spend.
    public var balance: Int64
    /// Held by pending uploads.
    public var reserved: Int64
    /// Bonuses, milestones, rewards, operator grants.
    public var totalEarned: Int64
    /// Consumed by uploads, net of refunds.
    public var totalSpent: Int64
    /// From purchases, package bonus included.
    public var totalPurchased: Int64
    /// Credits of lots that expire within the expiring-soon window (30 days by default).
    public var expiringSoon: Int64 = 0
    /// When the next lot with credits left expires.
    public var nextExpiryAtMs: Int64?

    public init(userId: String, balance: Int64 = 0, reserved: Int64 = 0, totalEarned: Int64 = 0,
                totalSpent: Int64 = 0, totalPurchased: Int64 = 0) {
        self.userId = userId
        self.balance = balance
        self.reserved = reserved
        self.totalEarned = totalEarned
        self.totalSpent = totalSpent
        self.totalPurchased = totalPurchased
    }
}

/// One journal row as its user sees it.
public struct JournalEntry: Sendable, Codable, Equatable {
    /// `txn_<n>`; n grows with time, so ids order the journal.
    public var id: String
    public var type: String
    /// Signed from the user's side: positive adds to the balance.
    public var credits: Int64
    /// The user's balance right after this row.
    public var balanceAfter: Int64
    /// The other side of the double entry (`platform:sales`, ...).
    public var counterparty: String
    /// The operation's natural key (`spend:<fileUploadId>`, `purchase:stripe:<paymentId>`).
    public var reference: String
    public var description: String
    public var createdAtMs: Int64
    /// The lots this row took credits from or put them into.
    public var lots: LotUsage = LotUsage()

    public init(id: String, type: String, credits: Int64, balanceAfter: Int64, counterparty: String,
                reference: String, description: String, createdAtMs: Int64, lots: LotUsage = LotUsage()) {
        self.lots = lots
        self.id = id
        self.type = type
        self.credits = credits
        self.balanceAfter = balanceAfter
        self.counterparty = counterparty
        self.reference = reference
        self.description = description
        self.createdAtMs = createdAtMs
    }
}

/// A page of a user's credit lots.
public struct LotPage: Sendable, Equatable {
    /// Oldest (lowest id) first.
    public var data: [CreditLot]
    /// Pass back as `cursor` for the next (newer) page; nil on the last page.
    public var nextCursor: String?

    public init(data: [CreditLot], nextCursor: String?) {
        self.data = data
        self.nextCursor = nextCursor
    }
}

public struct TransactionPage: Sendable, Codable, Equatable {
    /// Newest first.
    public var data: [JournalEntry]
    /// Pass back as `cursor` for the next (older) page; nil on the last page.
    public var nextCursor: String?

    public init(data: [JournalEntry], nextCursor: String?) {
        self.data = data
        self.nextCursor = nextCursor
    }
}

/// The result of checking every ledger invariant.
public struct ReconcileReport: Sendable, Codable, Equatable {
    public var accountsChecked: Int
    public var journalRows: Int
    /// Human-readable findings, the first broken account first. Empty when consistent.
    public var problems: [String]

    public var ok: Bool { problems.isEmpty }

    public init(accountsChecked: Int, journalRows: Int, problems: [String]) {
        self.accountsChecked = accountsChecked
        self.journalRows = journalRows
        self.problems = problems
    }
}

/// An upload as the ledger and the worker see it (`file_uploads`).
public struct UploadRecord: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable, CaseIterable {
        case queued, batched, submitted, confirmed, failed, refunded

        /// Confirmed and refunded uploads have settled their hold.
        public var isSettled: Bool { self == .confirmed || self == .refunded }
    }

    /// How a refunded upload's `failureReason` starts once a message stored it after its
    /// refund (`CreditStore.noteStoredAfterRefund`).
    public static let storedAfterRefundPrefix = "stored on chain after its refund"

    public static func storedAfterRefundNote(messageCid: String) -> String {
        "\(storedAfterRefundPrefix) by message \(messageCid), not charged"
    }

    public var uploadId: String
    public var userId: String
    public var fileType: String
    public var fileCount: Int
    public var features: [String]
    public var sizeBytes: Int64
    public var priority: UploadPriority
    public var status: Status
    /// Paid by the platform's sponsorship account, not the creator.
    public var sponsored: Bool = false
    public var creditsReserved: Int64
    public var creditsCharged: Int64
    public var batchId: String?
    public var failureReason: String?
    public var attempts: Int
    public var createdAtMs: Int64
    public var updatedAtMs: Int64

    public init(uploadId: String, userId: String, fileType: String, fileCount: Int, features: [String], sizeBytes: Int64,
                priority: UploadPriority, status: Status, creditsReserved: Int64, creditsCharged: Int64, batchId: String?,
                failureReason: String?, attempts: Int, createdAtMs: Int64, updatedAtMs: Int64) {
        self.uploadId = uploadId
        self.userId = userId
        self.fileType = fileType
        self.fileCount = fileCount
        self.features = features
        self.sizeBytes = sizeBytes
        self.priority = priority
        self.status = status
        self.creditsReserved = creditsReserved
        self.creditsCharged = creditsCharged
        self.batchId = batchId
        self.failureReason = failureReason
        self.attempts = attempts
        self.createdAtMs = createdAtMs
        self.updatedAtMs = updatedAtMs
    }
}
