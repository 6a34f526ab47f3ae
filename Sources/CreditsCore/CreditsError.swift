/// The stable error codes of the API contract (API.md). Callers switch on `code`, never on `message`.
public enum ErrorCode: String, Sendable, Codable, Equatable {
    case validationError = "VALIDATION_ERROR"
    case unauthorized = "UNAUTHORIZED"
    case forbidden = "FORBIDDEN"
    case insufficientCredits = "INSUFFICIENT_CREDITS"
    /// A payment reversal left the balance below zero: nothing can be spent until it is repaid.
    case accountInArrears = "ACCOUNT_IN_ARREARS"
    case notFound = "NOT_FOUND"
    case idempotencyConflict = "IDEMPOTENCY_CONFLICT"
    /// The thing exists but is not in a state that allows the request (an upload already settled).
    case invalidState = "INVALID_STATE"
    /// A sponsorship asked for a creator who is not eligible (or the month's budget is spent).
    case notEligible = "NOT_ELIGIBLE"
    case payloadTooLarge = "PAYLOAD_TOO_LARGE"
    case unavailable = "UNAVAILABLE"
    case `internal` = "INTERNAL"

    /// The HTTP status that carries this code.
    public var httpStatus: Int {
        switch self {
        case .validationError: 400
        case .unauthorized: 401
        case .insufficientCredits, .accountInArrears: 402
        case .forbidden: 403
        case .notFound: 404
        case .idempotencyConflict, .invalidState, .notEligible: 409
        case .payloadTooLarge: 413
        case .internal: 500
        case .unavailable: 503
        }
    }
}

/// An expected failure: bad input, a business rule, a conflict. A broken invariant is not a
/// `CreditsError`; it is a `precondition` failure.
///
/// A struct with a stable `code` (not an enum of cases) so that details can be added without
/// breaking callers. Codable because a remembered failure is replayed byte for byte.
public struct CreditsError: Error, Sendable, Codable, Equatable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    /// The request field at fault, for `VALIDATION_ERROR`.
    public var field: String?
    /// For `INSUFFICIENT_CREDITS`.
    public var required: Int64?
    public var available: Int64?
    public var suggestedPackage: String?
    /// For `ACCOUNT_IN_ARREARS`: the credits owed.
    public var owed: Int64?

    public init(
        _ code: ErrorCode, _ message: String, field: String? = nil,
        required: Int64? = nil, available: Int64? = nil, suggestedPackage: String? = nil, owed: Int64? = nil
    ) {
        self.owed = owed
        self.code = code
        self.message = message
        self.field = field
        self.required = required
        self.available = available
        self.suggestedPackage = suggestedPackage
    }

    public static func validation(_ field: String, _ message: String) -> CreditsError {
        CreditsError(.validationError, message, field: field)
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
