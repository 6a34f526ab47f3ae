/// A creator as the platform registered them (`users`).
public struct UserProfile: Sendable, Codable, Equatable {
    public var userId: String
    public var walletAddress: String?
    public var signedUpAtMs: Int64
    /// Sponsored uploads used so far (a failed one gives its slot back).
    public var sponsoredUploadsUsed: Int

    public init(userId: String, walletAddress: String?, signedUpAtMs: Int64, sponsoredUploadsUsed: Int = 0) {
        self.userId = userId
        self.walletAddress = walletAddress
        self.signedUpAtMs = signedUpAtMs
        self.sponsoredUploadsUsed = sponsoredUploadsUsed
    }
}

/// SEED.md's sponsorship: a new creator's first 5 uploads are free while their wallet address is
/// null or they signed up recently (30 days by default).
public struct SponsorshipRules: Sendable, Equatable {
    public var freeUploads: Int = 5
    public var recentSignupMs: Int64 = 30 * 86_400_000
    /// Sponsored credits the platform grants per calendar month (UTC), net of released holds;
    /// past it no new upload is sponsored.
    public var monthlyBudgetCredits: Int64 = 1_000_000

    public init() {}

    public struct Eligibility: Sendable, Codable, Equatable {
        public var eligible: Bool
        public var remainingSponsored: Int
        /// `no_wallet`, `recent_signup`, `not_registered`, `free_uploads_used`, `established_creator`.
        public var reason: String
    }

    public func eligibility(_ profile: UserProfile?, nowMs: Int64) -> Eligibility {
        guard let profile else {
            return Eligibility(eligible: false, remainingSponsored: 0, reason: "not_registered")
        }
        let remaining = max(0, freeUploads - profile.sponsoredUploadsUsed)
        if remaining == 0 { return Eligibility(eligible: false, remainingSponsored: 0, reason: "free_uploads_used") }
        if profile.walletAddress == nil { return Eligibility(eligible: true, remainingSponsored: remaining, reason: "no_wallet") }
        if nowMs - profile.signedUpAtMs < recentSignupMs {
            return Eligibility(eligible: true, remainingSponsored: remaining, reason: "recent_signup")
        }
        return Eligibility(eligible: false, remainingSponsored: 0, reason: "established_creator")
    }
}
