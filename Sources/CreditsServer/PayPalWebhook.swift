import CreditsCore
import CreditsStore
import Crypto
import CryptoExtras
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// PayPal's webhook signature, verified offline as PayPal documents ("verify the signature
/// yourself"): `PAYPAL-TRANSMISSION-SIG` is a base64 SHA256withRSA signature, by the key of
/// PayPal's certificate, over `<transmission id>|<transmission time>|<webhook id>|<crc32 of the raw
/// body, unsigned decimal>`. The certificate comes from `PAYPAL_CERT_FILE`; the
/// `PAYPAL-CERT-URL` header is never fetched, so a sender cannot choose the key.
struct PayPalSignature: Sendable {
    let webhookId: String
    let publicKey: _RSA.Signing.PublicKey

    init(webhookId: String, certificatePEM: String) throws {
        guard Identifier.isValid(webhookId) else { throw CreditsError.validation("PAYPAL_WEBHOOK_ID", "is not a PayPal webhook id") }
        self.webhookId = webhookId
        let der = try PEM.firstBlock(certificatePEM, label: "CERTIFICATE")
        publicKey = try _RSA.Signing.PublicKey(derRepresentation: try DER.subjectPublicKeyInfo(ofCertificate: der))
    }

    struct Headers {
        var transmissionId: String?
        var transmissionTime: String?
        var signature: String?
        var authAlgo: String?
    }

    func verify(_ h: Headers, body: [UInt8]) throws(CreditsError) {
        guard let id = h.transmissionId, !id.isEmpty, let time = h.transmissionTime, !time.isEmpty,
              let sig = h.signature, !sig.isEmpty
        else { throw .validation("PAYPAL-TRANSMISSION-SIG", "the PayPal transmission headers are missing") }
        if let algo = h.authAlgo, algo != "SHA256withRSA" {
            throw .validation("PAYPAL-AUTH-ALGO", "only SHA256withRSA is accepted")
        }
        guard let bytes = Data(base64Encoded: sig) else {
            throw .validation("PAYPAL-TRANSMISSION-SIG", "the signature is not base64")
        }
        let message = Array("\(id)|\(time)|\(webhookId)|\(CRC32.checksum(body))".utf8)
        guard publicKey.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: bytes), for: message, padding: .insecurePKCS1v1_5)
        else { throw .validation("PAYPAL-TRANSMISSION-SIG", "the signature does not match the body") }
    }
}

/// `POST /api/webhooks/paypal`: PAYMENT.CAPTURE.COMPLETED, DENIED, REFUNDED and REVERSED, applied
/// once per event id to the purchase whose paymentId is the capture id.
struct PayPalWebhookController {
    let manager: CreditManager
    let signature: PayPalSignature?

    func addRoutes(to group: RouterGroup<BasicRequestContext>) {
        group.post("paypal") { request, context in
            guard let signature else {
                throw CreditsError(.notFound, "PayPal webhooks are not configured on this server: set PAYPAL_WEBHOOK_ID and PAYPAL_CERT_FILE")
            }
            func header(_ name: String) -> String? { request.headers[HTTPField.Name(name)!] }
            let headers = PayPalSignature.Headers(
                transmissionId: header("PAYPAL-TRANSMISSION-ID"), transmissionTime: header("PAYPAL-TRANSMISSION-TIME"),
                signature: header("PAYPAL-TRANSMISSION-SIG"), authAlgo: header("PAYPAL-AUTH-ALGO"))
            return try await PaymentWebhooks.handle(
                request, provider: "PayPal", typeKey: "event_type", manager: manager, logger: context.logger,
                verify: { try signature.verify(headers, body: $0) }
            ) { id, type, event in
                PayPalEvents.paymentEvent(id: id, type: type, resource: JSONFields.object(event["resource"]))
            }
        }
    }
}

/// PayPal's v2 payments resources (a capture; a refund whose `up` link names its capture) as
/// payment events. The platform sets the capture's `custom_id` to `<userId>|<package>`.
enum PayPalEvents {
    static func paymentEvent(id: String, type: String, resource: [String: Any]) -> WebhookMapping {
        let kind: PaymentEventKind
        let capture: String?
        switch type {
        case "PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.DENIED":
            kind = type == "PAYMENT.CAPTURE.COMPLETED" ? .succeeded : .failed
            capture = JSONFields.string(resource["id"])
        case "PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.REVERSED":
            kind = type == "PAYMENT.CAPTURE.REFUNDED" ? .refunded : .reversed
            capture = upLink(resource)
        default:
            return .ignore("event type not used by this service")
        }
        guard let capture, Identifier.isValid(capture) else { return .ignore("the event names no capture; nothing to change") }
        let amount = JSONFields.object(resource["amount"])
        if let currency = JSONFields.string(amount["currency_code"]), currency != "USD" {
            return .ignore("currency \(currency) is not the catalog's (USD); not applied")
        }
        var request = PaymentEventRequest(paymentMethod: .paypal, eventId: id, paymentId: capture, kind: kind)
        if kind == .succeeded {
            // As for Stripe: 0 would mean "not said" and grant the package's price, so a capture
            // must say a positive amount in dollars. Until 2026-12-05 a value of "-20.00",
            // "20.001" or 20 (a number, not PayPal's string) granted the whole package.
            guard let paid = cents(amount["value"]), paid > 0 else {
                return .refuse("the capture's amount.value is not an amount in dollars above 0; not applied")
            }
            request.amountCents = paid
            let custom = (JSONFields.string(resource["custom_id"]) ?? "").split(separator: "|").map(String.init)
            if custom.count == 2 {
                request.userId = custom[0]
                request.package = custom[1]
            }
        } else if kind == .refunded {
            // The capture's total refunded so far, when PayPal says it (`total_refunded_amount` is
            // optional), and this refund by its id: refunds add up either way, each counted once.
            let total = JSONFields.object(JSONFields.object(resource["seller_payable_breakdown"])["total_refunded_amount"])
            request.refundedCents = cents(total["value"]) ?? 0
            if let refundId = JSONFields.string(resource["id"]), Identifier.isValid(refundId), let own = cents(amount["value"]) {
                request.refund = PaymentRefund(id: refundId, cents: own)
            } else if request.refundedCents == 0 {
                // Neither a total nor a refund id: this refund's own amount is the least refunded.
                request.refundedCents = cents(amount["value"]) ?? 0
            }
        }
        return .apply(request)
    }

    /// The capture id at the end of the `rel: up` link (`.../v2/payments/captures/<id>`).
    static func upLink(_ resource: [String: Any]) -> String? {
        let links = resource["links"] as? [Any] ?? []
        for case let link as [String: Any] in links where JSONFields.string(link["rel"]) == "up" {
            if let href = JSONFields.string(link["href"]), let last = href.split(separator: "/").last {
                return String(last)
            }
        }
        return nil
    }

    static func cents(_ value: Any?) -> Int64? {
        guard let text = JSONFields.string(value) else { return nil }
        return try? Cents.parse(Cents.Text(text), field: "amount")
    }
}

/// CRC-32 (IEEE 802.3, the zlib one PayPal uses), bitwise: bodies are small.
enum CRC32 {
    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }
}

enum PEM {
    struct Invalid: Error, CustomStringConvertible { var description: String }

    /// The DER bytes of the first `-----BEGIN <label>-----` block.
    static func firstBlock(_ text: String, label: String) throws -> [UInt8] {
        guard let begin = text.range(of: "-----BEGIN \(label)-----"),
              let end = text.range(of: "-----END \(label)-----", range: begin.upperBound..<text.endIndex)
        else { throw Invalid(description: "no \(label) block in the PEM file") }
        let base64 = text[begin.upperBound..<end.lowerBound].filter { !$0.isWhitespace }
        guard let data = Data(base64Encoded: String(base64)) else { throw Invalid(description: "the \(label) block is not base64") }
        return Array(data)
    }
}

/// Just enough DER to find an X.509 certificate's SubjectPublicKeyInfo (RFC 5280 §4.1).
enum DER {
    struct Invalid: Error, CustomStringConvertible { var description: String }

    /// (tag, header + content range) of the element starting at `i`.
    static func element(_ b: [UInt8], at i: Int) throws -> (tag: UInt8, content: Range<Int>, end: Int) {
        guard i + 1 < b.count else { throw Invalid(description: "truncated certificate") }
        var length = Int(b[i + 1])
        var start = i + 2
        if length & 0x80 != 0 {
            let n = length & 0x7F
            guard n >= 1, n <= 4, start + n <= b.count else { throw Invalid(description: "bad length in certificate") }
            length = b[start..<start + n].reduce(0) { $0 << 8 | Int($1) }
            start += n
        }
        guard start + length <= b.count else { throw Invalid(description: "truncated certificate") }
        return (b[i], start..<start + length, start + length)
    }

    static func subjectPublicKeyInfo(ofCertificate b: [UInt8]) throws -> [UInt8] {
        let cert = try element(b, at: 0)
        guard cert.tag == 0x30 else { throw Invalid(description: "not a certificate") }
        let tbs = try element(b, at: cert.content.lowerBound)
        guard tbs.tag == 0x30 else { throw Invalid(description: "not a certificate") }
        var i = tbs.content.lowerBound
        // version [0] (optional), serialNumber, signature, issuer, validity, subject, then the key.
        if b[i] == 0xA0 { i = try element(b, at: i).end }
        for _ in 0..<5 { i = try element(b, at: i).end }
        let spki = try element(b, at: i)
        guard spki.tag == 0x30 else { throw Invalid(description: "no public key in the certificate") }
        return Array(b[i..<spki.end])
    }
}
