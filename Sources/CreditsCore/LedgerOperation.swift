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

    public init(userId: String, package: String, paymentMethod: PaymentMethod, paymentId: String) {
        self.userId = userId
        self.package = package
        self.paymentMethod = paymentMethod
        self.paymentId = paymentId
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

    public init(userId: String, credits: Int64, adjustmentId: String, reason: String) {
        self.userId = userId
        self.credits = credits
        self.adjustmentId = adjustmentId
        self.reason = reason
    }
}

/// One change to balances. Each is applied atomically, once per key.
public enum LedgerOperation: Sendable, Codable, Equatable {
    case purchase(PurchaseRequest)
    case spend(SpendRequest)
    case adjust(AdjustmentRequest)

    public var userId: String {
        switch self {
        case .purchase(let r): r.userId
        case .spend(let r): r.userId
        case .adjust(let r): r.userId
        }
    }

    /// The natural idempotency key: the same key always names the same movement.
    public var naturalKey: String {
        switch self {
        case .purchase(let r): "purchase:\(r.paymentMethod.rawValue):\(r.paymentId)"
        case .spend(let r): "spend:\(r.fileUploadId)"
        case .adjust(let r): "adjust:\(r.adjustmentId)"
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
            return ["adjust", r.userId, String(r.credits), r.adjustmentId, String(r.reason.utf8.count), r.reason]
                .joined(separator: sep)
        }
    }

    /// Checks every field against the catalog and the limits; throws naming the field.
    public func validate(catalog: Catalog) throws(CreditsError) {
        try Identifier.check(userId, field: "userId")
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
        }
    }

    private static func checkText(_ text: String, field: String) throws(CreditsError) {
        if text.utf8.count > Limits.descriptionLengthMax {
            throw .validation(field, "must be at most \(Limits.descriptionLengthMax) bytes")
        }
        if text.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" && $0 != "\t" }) {
            throw .validation(field, "must not contain control characters")
        }
    }
}
