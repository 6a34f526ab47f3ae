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

    public init(id: String, type: String, credits: Int64, balanceAfter: Int64, counterparty: String,
                reference: String, description: String, createdAtMs: Int64) {
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
