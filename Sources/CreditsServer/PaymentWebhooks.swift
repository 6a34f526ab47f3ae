import CreditsCore
import CreditsStore
import Foundation
import Hummingbird
import Logging

/// What both webhook endpoints answer: 200 whenever the event was verified, applied or not, so
/// that the provider stops retrying; `applied` says whether credits or the purchase changed.
struct WebhookAnswer: Encodable {
    var received = true
    var applied: Bool
    var eventId: String?
    var type: String?
    var purchaseId: String?
    var status: String?
    var creditsChange: Int64?
    var detail: String?
}

/// A provider event read: a payment event to apply, or why it changes nothing.
enum WebhookMapping: Equatable {
    case apply(PaymentEventRequest)
    case ignore(String)
    /// An event this service uses that it cannot read safely (a success whose amount is not a
    /// positive amount): acknowledged (asking again would not change it), not applied, and logged
    /// for operators.
    case refuse(String)
}

enum PaymentWebhooks {
    /// Reads the raw body (bounded), lets `verify` check its signature (throwing 400), reads the
    /// event's id and type, maps it, and applies it or says why not.
    static func handle(
        _ request: Request, provider: String, typeKey: String, manager: CreditManager, logger: Logger,
        verify: (_ body: [UInt8]) throws -> Void,
        map: (_ id: String, _ type: String, _ event: [String: Any]) -> WebhookMapping
    ) async throws -> Response {
        let body = Array(try await request.body.collect(upTo: Limits.requestBodyBytesMax).readableBytesView)
        try verify(body)
        guard let event = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let id = event["id"] as? String, let type = event[typeKey] as? String
        else { throw CreditsError.validation("body", "not a \(provider) event (id and \(typeKey) are required)") }
        guard Identifier.isValid(id) else { throw CreditsError.validation("id", "not a \(provider) event id") }
        switch map(id, type, event) {
        case .apply(let paymentEvent):
            return try await apply(paymentEvent, type: type, manager: manager, logger: logger)
        case .ignore(let why):
            return try ignored(eventId: id, type: type, detail: why)
        case .refuse(let why):
            logger.error("payment event not applied", metadata: ["event": "\(id)", "reason": "\(why)"])
            return try ignored(eventId: id, type: type, detail: why)
        }
    }

    /// Applies a provider event once. A rejection retrying cannot change (a validation error, a
    /// payment claimed by another buyer) is acknowledged and logged for operators.
    static func apply(_ event: PaymentEventRequest, type: String, manager: CreditManager, logger: Logger) async throws -> Response {
        do {
            let result = try await manager.applyPaymentEvent(event)
            switch result.outcome {
            case .paymentEvent(let r):
                let detail = result.replayed ? "already applied" : r.userId == nil ? "recorded; no purchase for this payment yet" : nil
                return try JSONResponse.make(.ok, WebhookAnswer(
                    applied: !result.replayed, eventId: event.eventId, type: type, purchaseId: r.purchaseId, status: r.status,
                    creditsChange: r.creditsChange, detail: detail))
            case .rejected(let e):
                logger.error("payment event not applied", metadata: ["event": "\(event.eventId)", "reason": "\(e.message)"])
                return try JSONResponse.make(.ok, WebhookAnswer(applied: false, eventId: event.eventId, type: type, detail: e.message))
            default:
                throw StoreOutcomeMismatch()
            }
        } catch let error as CreditsError where error.code == .idempotencyConflict || error.code == .validationError {
            logger.error("payment event not applied", metadata: ["event": "\(event.eventId)", "reason": "\(error.message)"])
            return try JSONResponse.make(.ok, WebhookAnswer(applied: false, eventId: event.eventId, type: type, detail: error.message))
        }
    }

    static func ignored(eventId: String, type: String, detail: String) throws -> Response {
        try JSONResponse.make(.ok, WebhookAnswer(applied: false, eventId: eventId, type: type, detail: detail))
    }

    struct StoreOutcomeMismatch: Error {}
}

/// Reading provider JSON (decoded with JSONSerialization: the bodies are large and mostly ignored).
enum JSONFields {
    static func object(_ value: Any?) -> [String: Any] { value as? [String: Any] ?? [:] }

    static func string(_ value: Any?) -> String? { value as? String }

    /// A whole number, or nil (a fraction or another type is not one).
    static func int(_ value: Any?) -> Int64? {
        // JSON numbers arrive as NSNumber; a JSON boolean is one too, of ObjC type "c"
        // (`is Bool` would also match the numbers 0 and 1).
        guard let n = value as? NSNumber, !(value is String), String(cString: n.objCType) != "c" else { return nil }
        return (value as? Int).map(Int64.init)
    }
}
