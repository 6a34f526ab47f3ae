import CreditsCore
import CreditsStore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

/// Stripe's webhook signature (docs: "verify manually"): `Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`,
/// each v1 an HMAC-SHA256 with the endpoint secret over `"<t>.<raw body>"`. Any v1 matching any
/// configured secret (several during a rotation) is accepted; the timestamp must be within 300 s.
struct StripeSignature {
    let secrets: [String]
    var toleranceSeconds: Int64 = 300

    func verify(header: String?, body: [UInt8], nowMs: Int64) throws(CreditsError) {
        guard let header, !header.isEmpty else { throw .validation("Stripe-Signature", "the Stripe-Signature header is missing") }
        var timestamp: Int64?
        var signatures: [[UInt8]] = []
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2 else { continue }
            if pair[0] == "t", timestamp == nil { timestamp = Int64(pair[1]) }
            if pair[0] == "v1", let bytes = Self.hexBytes(pair[1]) { signatures.append(bytes) }
        }
        guard let timestamp else { throw .validation("Stripe-Signature", "no timestamp in the Stripe-Signature header") }
        guard !signatures.isEmpty else { throw .validation("Stripe-Signature", "no v1 signature in the Stripe-Signature header") }
        guard abs(nowMs / 1000 - timestamp) <= toleranceSeconds else {
            throw .validation("Stripe-Signature", "the signature's timestamp is more than \(toleranceSeconds) s away")
        }
        let signed = Array("\(timestamp).".utf8) + body
        for secret in secrets {
            let expected = Array(HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: Array(secret.utf8))))
            for candidate in signatures where ConstantTime.equal(candidate, expected) { return }
        }
        throw .validation("Stripe-Signature", "no signature matches the body")
    }

    static func hexBytes(_ hex: String) -> [UInt8]? {
        let chars = Array(hex.utf8)
        guard chars.count == 64 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(32)
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x61...0x66: c - 0x61 + 10
        case 0x41...0x46: c - 0x41 + 10
        default: nil
        }
    }
}

/// `POST /api/webhooks/stripe`. Applies `payment_intent.succeeded` (completes the purchase whose
/// paymentId is the intent id, or creates it from the intent's metadata userId and package) exactly
/// once: the event id is stored as an idempotency key in the ledger's transaction, and the
/// purchase's natural key makes a purchase call and the event one grant in either order.
struct StripeWebhookController {
    let manager: CreditManager
    let signature: StripeSignature?
    let clock: WallClock

    /// Event types this service will apply but does not yet: answered 503, so Stripe retries
    /// them (for up to three days) rather than counting them delivered.
    static let notYetHandled: Set<String> = [
        "payment_intent.payment_failed", "charge.refunded", "charge.dispute.created", "charge.dispute.closed",
    ]

    struct Answer: Encodable {
        var received: Bool
        var applied: Bool
        var eventId: String?
        var type: String?
        var detail: String?
    }

    func addRoutes(to group: RouterGroup<BasicRequestContext>) {
        group.post("stripe") { request, context in
            guard let signature else {
                throw CreditsError(.notFound, "Stripe webhooks are not configured on this server: set STRIPE_WEBHOOK_SECRET")
            }
            let buffer = try await request.body.collect(upTo: Limits.requestBodyBytesMax)
            let body = Array(buffer.readableBytesView)
            try signature.verify(header: request.headers[HTTPField.Name("Stripe-Signature")!], body: body, nowMs: clock.nowMs())
            guard let event = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
                  let id = event["id"] as? String, let type = event["type"] as? String
            else { throw CreditsError.validation("body", "not a Stripe event (id and type are required)") }
            guard Identifier.isValid(id) else { throw CreditsError.validation("id", "not a Stripe event id") }
            switch type {
            case "payment_intent.succeeded":
                return try await succeeded(id: id, event: event, logger: context.logger)
            case let t where Self.notYetHandled.contains(t):
                throw CreditsError(.unavailable, "Stripe event type \(t) is not handled yet; Stripe will retry it")
            default:
                return try JSONResponse.make(.ok, Answer(received: true, applied: false, eventId: id, type: type, detail: "ignored"))
            }
        }
    }

    private func succeeded(id: String, event: [String: Any], logger: Logger) async throws -> Response {
        let object = (event["data"] as? [String: Any])?["object"] as? [String: Any] ?? [:]
        let metadata = object["metadata"] as? [String: Any] ?? [:]
        guard let intent = object["id"] as? String, let userId = metadata["userId"] as? String,
              let package = metadata["package"] as? String
        else {
            return try JSONResponse.make(.ok, Answer(
                received: true, applied: false, eventId: id, type: "payment_intent.succeeded",
                detail: "the payment intent has no metadata userId and package; nothing to grant"))
        }
        do {
            let result = try await manager.purchaseCredits(
                userId, package, paymentMethod: .stripe, paymentId: intent, idempotencyKey: "stripe-event:\(id)")
            let applied: Bool
            if case .purchased = result.outcome { applied = !result.replayed } else { applied = false }
            return try JSONResponse.make(.ok, Answer(received: true, applied: applied, eventId: id, type: "payment_intent.succeeded",
                                                     detail: result.replayed ? "already applied" : "purchase completed"))
        } catch let error as CreditsError where error.code == .idempotencyConflict || error.code == .validationError {
            // Retrying cannot change this: acknowledge, and leave it to operators (logged).
            logger.error("Stripe event not applied", metadata: ["event": "\(id)", "reason": "\(error.message)"])
            return try JSONResponse.make(.ok, Answer(received: true, applied: false, eventId: id, type: "payment_intent.succeeded",
                                                     detail: error.message))
        }
    }
}
