public enum PaymentMethod: String, Sendable, Codable, Equatable, CaseIterable {
    case stripe
    case paypal
}

/// Buy a package: credits (and its bonus) granted at once. Natural key: (paymentMethod, paymentId).
public struct PurchaseRequest: Sendable, Codable, Equatable {
    public var userId: String
    public var package: String
    public var paymentMethod: PaymentMethod
    public var paymentId: String
    /// Grant the credits now (the default) rather than when the provider confirms the payment
    /// (`--require-payment-confirmation`). A server setting, not part of the request's identity.
    public var grantAtOnce: Bool

    public init(userId: String, package: String, paymentMethod: PaymentMethod, paymentId: String, grantAtOnce: Bool = true) {
        self.userId = userId
        self.package = package
        self.paymentMethod = paymentMethod
        self.paymentId = paymentId
        self.grantAtOnce = grantAtOnce
    }
}

/// Spend credits on an upload. Natural key: fileUploadId.
public struct SpendRequest: Sendable, Codable, Equatable {
    public var userId: String
    public var credits: Int64
    public var fileUploadId: String
    public var description: String

    public init(userId: String, credits: Int64, fileUploadId: String, description: String = "") {
        self.userId = userId
        self.credits = credits
        self.fileUploadId = fileUploadId
        self.description = description
    }
}

/// An operator's correction: positive grants credits, negative takes them back (never below zero).
/// Natural key: adjustmentId.
public struct AdjustmentRequest: Sendable, Codable, Equatable {
    public var userId: String
    public var credits: Int64
    public var adjustmentId: String
    public var reason: String
    /// The lot a grant makes: promotional (the default; it expires) or paid (it never does).
    public var category: LotCategory

    public init(userId: String, credits: Int64, adjustmentId: String, reason: String, category: LotCategory = .promotional) {
        self.userId = userId
        self.credits = credits
        self.adjustmentId = adjustmentId
        self.reason = reason
        self.category = category
    }
}

public enum UploadPriority: String, Sendable, Codable, Equatable, CaseIterable {
    case low
    case medium
    case high
}

/// Queue an upload: its estimated credits move from available to held. Natural key: uploadId.
public struct UploadRequest: Sendable, Codable, Equatable {
    public var uploadId: String
    public var userId: String
    public var fileType: String
    public var fileCount: Int
    public var features: [String]
    public var sizeBytes: Int64
    public var priority: UploadPriority

    public init(uploadId: String, userId: String, fileType: String, fileCount: Int = 1, features: [String] = [],
                sizeBytes: Int64, priority: UploadPriority = .medium) {
        self.uploadId = uploadId
        self.userId = userId
        self.fileType = fileType
        self.fileCount = fileCount
        self.features = features
        self.sizeBytes = sizeBytes
        self.priority = priority
    }

    public var estimateRequest: EstimateRequest {
        EstimateRequest(fileType: fileType, fileCount: fileCount, features: features)
    }

    /// The price of a validated request.
    public func estimate(catalog: Catalog) -> Estimate {
        guard let e = try? Pricing.estimate(estimateRequest, catalog: catalog) else {
            preconditionFailure("validated before planning")
        }
        return e
    }
}

/// Settle a held upload: capture its credits (confirmed on chain) or release them (failed for
/// good, with the reason). Natural keys: `capture:<uploadId>`, `release:<uploadId>`.
public struct SettleRequest: Sendable, Codable, Equatable {
    public var uploadId: String
    public var userId: String
    public var reason: String
    /// A release only: refuse it (`INVALID_STATE`, nothing written) unless the upload is
    /// `failed` in this batch, checked in the ledger's transaction. The worker's release of an
    /// upload its batch failed must not refund one that another instance took over and sent
    /// meanwhile. Not part of the operation's fingerprint: it is a condition, not content.
    public var failedInBatch: String?

    public init(uploadId: String, userId: String, reason: String = "", failedInBatch: String? = nil) {
        self.uploadId = uploadId
        self.userId = userId
        self.reason = reason
        self.failedInBatch = failedInBatch
    }
}

/// A milestone bonus (SEED.md: plays_1k 25, followers_5k 50, first_creator_coin 100), once per
/// user and milestone. Natural key: `milestone:<userId>:<milestone>`.
public struct MilestoneRequest: Sendable, Codable, Equatable {
    public var userId: String
    public var milestone: String

    public init(userId: String, milestone: String) {
        self.userId = userId
        self.milestone = milestone
    }
}

/// The seed's `createSponsoredUpload`: the platform pays an upload's credits outright from its
/// sponsorship account, using one of the creator's free uploads. Natural key:
/// `sponsored:<fileUploadId>`.
public struct SponsoredUploadRequest: Sendable, Codable, Equatable {
    public var userId: String
    public var fileUploadId: String
    public var credits: Int64
    public var reason: String
    /// Informational values the caller attaches, in cents (the seed's usdValue, gasValue).
    public var usdValueCents: Int64
    public var gasValueCents: Int64

    public init(userId: String, fileUploadId: String, credits: Int64, reason: String, usdValueCents: Int64 = 0, gasValueCents: Int64 = 0) {
        self.userId = userId
        self.fileUploadId = fileUploadId
        self.credits = credits
        self.reason = reason
        self.usdValueCents = usdValueCents
        self.gasValueCents = gasValueCents
    }
}

/// Sweep a user's expired lots to the expiry account (`credits expire`, the daily sweep).
/// Natural key: `expire-sweep:<sweepId>:<userId>`.
public struct ExpireRequest: Sendable, Codable, Equatable {
    public var userId: String
    /// Names the sweep (its time), so that one sweep runs once per user.
    public var sweepId: String

    public init(userId: String, sweepId: String) {
        self.userId = userId
        self.sweepId = sweepId
    }
}

/// One change to balances. Each is applied atomically, once per key.
public enum LedgerOperation: Sendable, Codable, Equatable {
    case purchase(PurchaseRequest)
    case spend(SpendRequest)
    case adjust(AdjustmentRequest)
    case upload(UploadRequest)
    case capture(SettleRequest)
    case release(SettleRequest)
    case milestone(MilestoneRequest)
    case sponsor(SponsoredUploadRequest)
    /// A verified payment provider event (Stripe, PayPal).
    case paymentEvent(PaymentEventRequest)
    case expire(ExpireRequest)

    /// The user the operation names; empty for a provider event that names none (the payment's
    /// purchase, read in the transaction, decides).
    public var userId: String {
        switch self {
        case .purchase(let r): r.userId
        case .spend(let r): r.userId
        case .adjust(let r): r.userId
        case .upload(let r): r.userId
        case .capture(let r), .release(let r): r.userId
        case .milestone(let r): r.userId
        case .sponsor(let r): r.userId
        case .paymentEvent(let r): r.userId
        case .expire(let r): r.userId
        }
    }

    /// The payment a purchase or a provider event is about.
    public var paymentKey: PaymentKey? {
        switch self {
        case .purchase(let r): PaymentKey(r.paymentMethod, r.paymentId)
        case .paymentEvent(let r): PaymentKey(r.paymentMethod, r.paymentId)
        default: nil
        }
    }

    /// The natural key: the same key always names the same movement. It names the operation's
    /// journal rows (`reference`); the ledger keeps its outcome under `storedKey`.
    public var naturalKey: String {
        switch self {
        case .purchase(let r): "purchase:\(r.paymentMethod.rawValue):\(r.paymentId)"
        case .spend(let r): "spend:\(r.fileUploadId)"
        case .adjust(let r): "adjust:\(r.adjustmentId)"
        case .upload(let r): "upload:\(r.uploadId)"
        case .capture(let r): "capture:\(r.uploadId)"
        case .release(let r): "release:\(r.uploadId)"
        case .milestone(let r): "milestone:\(r.userId):\(r.milestone)"
        case .sponsor(let r): "sponsored:\(r.fileUploadId)"
        case .paymentEvent(let r): "payment-event:\(r.paymentMethod.rawValue):\(r.eventId)"
        case .expire(let r): "expire-sweep:\(r.sweepId):\(r.userId)"
        }
    }

    /// The key the ledger keeps the operation's outcome under: its natural key, except for the
    /// three ways of paying for a file upload (a spend's `fileUploadId`, a queued upload's
    /// `uploadId`, an explicit sponsorship's `fileUploadId`), which share `file:<id>`. So one id
    /// is paid for once, whichever way: a second way under the same id is "same key, another
    /// request" (409). Their natural keys (`spend:`, `upload:`, `sponsored:`) still name their
    /// journal rows; outcomes stored under those before `v11-file-keys` were copied to `file:`.
    public var storedKey: String {
        switch self {
        case .spend(let r): "file:\(r.fileUploadId)"
        case .upload(let r): "file:\(r.uploadId)"
        case .sponsor(let r): "file:\(r.fileUploadId)"
        default: naturalKey
        }
    }

    /// Uploads (sponsored automatically when eligible) and explicit sponsorships.
    public var mayBeSponsored: Bool {
        switch self {
        case .upload, .sponsor: true
        default: false
        }
    }

    /// The upload a capture or release settles.
    public var settledUploadId: String? {
        switch self {
        case .capture(let r), .release(let r): r.uploadId
        default: nil
        }
    }

    /// A deterministic text of every field, hashed by the store to tell "same request" from
    /// "same key, other request". Fields are separated by U+001F, which validation keeps out of
    /// identifiers; free text goes last and is length-prefixed.
    public var canonicalForm: String {
        let sep = "\u{1F}"
        switch self {
        case .purchase(let r):
            return ["purchase", r.userId, r.package, r.paymentMethod.rawValue, r.paymentId].joined(separator: sep)
        case .spend(let r):
            return ["spend", r.userId, String(r.credits), r.fileUploadId, String(r.description.utf8.count), r.description]
                .joined(separator: sep)
        case .adjust(let r):
            // The default category adds nothing, so keys stored before lots still replay.
            return ["adjust", r.userId, String(r.credits), r.adjustmentId, String(r.reason.utf8.count), r.reason]
                .joined(separator: sep) + (r.category == .paid ? sep + "paid" : "")
        case .upload(let r):
            return ["upload", r.uploadId, r.userId, r.fileType, String(r.fileCount), r.features.joined(separator: ","),
                    String(r.sizeBytes), r.priority.rawValue].joined(separator: sep)
        case .capture(let r):
            return ["capture", r.uploadId, r.userId].joined(separator: sep)
        case .release(let r):
            // The reason is free text that may differ between retries; the upload id decides.
            return ["release", r.uploadId, r.userId].joined(separator: sep)
        case .milestone(let r):
            return ["milestone", r.userId, r.milestone].joined(separator: sep)
        case .sponsor(let r):
            return ["sponsor", r.userId, r.fileUploadId, String(r.credits), String(r.usdValueCents), String(r.gasValueCents),
                    String(r.reason.utf8.count), r.reason].joined(separator: sep)
        case .paymentEvent(let r):
            // A refund named by id adds its fields; events without one keep the fingerprint they
            // were stored under.
            return (["payment-event", r.paymentMethod.rawValue, r.eventId, r.paymentId, r.kind.rawValue, r.userId, r.package,
                     String(r.amountCents), String(r.refundedCents)] + (r.refund.map { ["refund", $0.id, String($0.cents)] } ?? []))
                .joined(separator: sep)
        case .expire(let r):
            return ["expire", r.userId, r.sweepId].joined(separator: sep)
        }
    }

    /// Checks every field against the catalog and the limits; throws naming the field.
    public func validate(catalog: Catalog) throws(CreditsError) {
        if case .paymentEvent(let r) = self, r.userId.isEmpty {
            // A provider event may name no user.
        } else {
            try Identifier.check(userId, field: "userId")
        }
        switch self {
        case .purchase(let r):
            if catalog.package(r.package) == nil {
                let known = catalog.packages.map(\.id).joined(separator: ", ")
                throw .validation("package", "unknown package '\(r.package)'; expected one of: \(known)")
            }
            try Identifier.check(r.paymentId, field: "paymentId")
        case .spend(let r):
            if r.credits <= 0 || r.credits > Limits.creditsPerOperationMax {
                throw .validation("credits", "must be between 1 and \(Limits.creditsPerOperationMax)")
            }
            try Identifier.check(r.fileUploadId, field: "fileUploadId")
            try Self.checkText(r.description, field: "description")
        case .adjust(let r):
            if r.credits == 0 || r.credits > Limits.creditsPerOperationMax || r.credits < -Limits.creditsPerOperationMax {
                throw .validation("credits", "must be non-zero and at most \(Limits.creditsPerOperationMax) in size")
            }
            try Identifier.check(r.adjustmentId, field: "adjustmentId")
            if r.reason.isEmpty { throw .validation("reason", "an adjustment needs a reason") }
            try Self.checkText(r.reason, field: "reason")
        case .upload(let r):
            try Identifier.check(r.uploadId, field: "uploadId")
            _ = try Pricing.estimate(r.estimateRequest, catalog: catalog)
            if r.sizeBytes <= 0 || r.sizeBytes > Limits.uploadSizeBytesMax {
                throw .validation("sizeBytes", "must be between 1 and \(Limits.uploadSizeBytesMax)")
            }
        case .capture(let r), .release(let r):
            try Identifier.check(r.uploadId, field: "uploadId")
            try Self.checkText(r.reason, field: "reason")
        case .sponsor(let r):
            try Identifier.check(r.fileUploadId, field: "fileUploadId")
            if r.credits <= 0 || r.credits > Limits.catalogCreditsMax {
                throw .validation("creditsCost", "must be between 1 and \(Limits.catalogCreditsMax)")
            }
            if r.usdValueCents < 0 || r.usdValueCents > Limits.catalogPriceCentsMax { throw .validation("usdValue", "must be 0 to 1,000,000.00") }
            if r.gasValueCents < 0 || r.gasValueCents > Limits.catalogPriceCentsMax { throw .validation("gasValue", "must be 0 to 1,000,000.00") }
            try Self.checkText(r.reason, field: "reason")
        case .paymentEvent(let r):
            try Identifier.check(r.eventId, field: "eventId")
            try Identifier.check(r.paymentId, field: "paymentId")
            if !r.package.isEmpty, catalog.package(r.package) == nil {
                throw .validation("package", "unknown package '\(r.package)'")
            }
            for (field, cents) in [("amount", r.amountCents), ("amountRefunded", r.refundedCents), ("refund.amount", r.refund?.cents ?? 0)]
            where cents < 0 || cents > Limits.catalogPriceCentsMax {
                throw .validation(field, "must be 0 to 1,000,000.00")
            }
            if let refund = r.refund { try Identifier.check(refund.id, field: "refund.id") }
        case .expire(let r):
            try Identifier.check(r.sweepId, field: "sweepId")
        case .milestone(let r):
            if catalog.milestone(r.milestone) == nil {
                let known = catalog.milestones.map(\.id).joined(separator: ", ")
                throw .validation("milestone", "unknown milestone '\(r.milestone)'; expected one of: \(known)")
            }
        }
    }

    /// `text` made to pass the check on ledger text (`checkText`): control characters other than
    /// newline and tab become spaces, and it is cut, on a character boundary, to at most
    /// `Limits.descriptionLengthMax` UTF-8 bytes. For text the service writes from others' words
    /// (a chain node's error in a refund's reason), which must never make a settlement fail.
    public static func fittedText(_ text: String) -> String {
        var out = ""
        var bytes = 0
        for c in text {
            let fitted: Character = c.unicodeScalars.contains(where: isControl) ? " " : c
            bytes += fitted.utf8.count
            if bytes > Limits.descriptionLengthMax { break }
            out.append(fitted)
        }
        return out
    }

    private static func isControl(_ s: Unicode.Scalar) -> Bool { s.value < 0x20 && s != "\n" && s != "\t" }

    private static func checkText(_ text: String, field: String) throws(CreditsError) {
        if text.utf8.count > Limits.descriptionLengthMax {
            throw .validation(field, "must be at most \(Limits.descriptionLengthMax) bytes")
        }
        if text.unicodeScalars.contains(where: isControl) {
            throw .validation(field, "must not contain control characters")
        }
    }
}
