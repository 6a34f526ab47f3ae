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

/// `POST /api/webhooks/stripe`: verifies the signature, maps the event to the payment it is
/// about (the purchase's paymentId is the payment intent id) and applies it once per event id.
struct StripeWebhookController {
    let manager: CreditManager
    let signature: StripeSignature?
    let clock: WallClock

    func addRoutes(to group: RouterGroup<BasicRequestContext>) {
        group.post("stripe") { request, context in
            guard let signature else {
                throw CreditsError(.notFound, "Stripe webhooks are not configured on this server: set STRIPE_WEBHOOK_SECRET")
            }
            return try await PaymentWebhooks.handle(
                request, provider: "Stripe", typeKey: "type", manager: manager, logger: context.logger,
                verify: { try signature.verify(header: request.headers[HTTPField.Name("Stripe-Signature")!], body: $0, nowMs: clock.nowMs()) }
            ) { id, type, event in
                StripeEvents.paymentEvent(id: id, type: type, object: JSONFields.object(JSONFields.object(event["data"])["object"]))
            }
        }
    }
}

/// Stripe's event objects (API reference: PaymentIntent, Charge, Dispute) as payment events.
enum StripeEvents {
    static func paymentEvent(id: String, type: String, object: [String: Any]) -> WebhookMapping {
        let kind: PaymentEventKind
        let intent: String?
        switch type {
        case "payment_intent.succeeded", "payment_intent.payment_failed":
            kind = type == "payment_intent.succeeded" ? .succeeded : .failed
            intent = JSONFields.string(object["id"])
        case "charge.refunded":
            kind = .refunded
            intent = JSONFields.string(object["payment_intent"])
        case "charge.dispute.created":
            kind = .disputeOpened
            intent = JSONFields.string(object["payment_intent"])
        case "charge.dispute.closed":
            switch JSONFields.string(object["status"]) {
            // An inquiry closed without a chargeback took no money.
            case "won", "warning_closed": kind = .disputeWon
            case "lost": kind = .disputeLost
            case let other: return .ignore("dispute closed with status \(other ?? "none"); nothing to change")
            }
            intent = JSONFields.string(object["payment_intent"])
        default:
            return .ignore("event type not used by this service")
        }
        guard let intent, Identifier.isValid(intent) else {
            return .ignore("the event names no payment intent; nothing to change")
        }
        if let currency = JSONFields.string(object["currency"]), currency.lowercased() != "usd" {
            return .ignore("currency \(currency) is not the catalog's (usd); not applied")
        }
        let metadata = JSONFields.object(object["metadata"])
        var request = PaymentEventRequest(paymentMethod: .stripe, eventId: id, paymentId: intent, kind: kind)
        if kind == .succeeded {
            // What the intent collected, and who bought which package (the metadata the platform set).
            // An amount of 0 means "not said" to the ledger (a purchase call's), which grants the
            // package's price: so a success must say a positive whole number of cents, or it is
            // not applied. Until 2026-12-05 an `amount_received` of 0, or one not a whole number,
            // granted the whole package.
            guard let received = JSONFields.int(object["amount_received"] ?? object["amount"]), received > 0 else {
                return .refuse("the payment intent's amount_received is not a whole number of cents above 0; not applied")
            }
            request.amountCents = received
            request.userId = JSONFields.string(metadata["userId"]) ?? ""
            request.package = JSONFields.string(metadata["package"]) ?? ""
            if request.userId.isEmpty != request.package.isEmpty { request.userId = ""; request.package = "" }
        } else if kind == .refunded {
            request.amountCents = JSONFields.int(object["amount_captured"]) ?? JSONFields.int(object["amount"]) ?? 0
            request.refundedCents = JSONFields.int(object["amount_refunded"]) ?? 0
        }
        return .apply(request)
    }
}
