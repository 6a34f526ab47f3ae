import CreditsCore
@testable import CreditsServer
import CreditsStore
import CreditsTestSupport
import Crypto
import CryptoExtras
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

/// PayPal webhooks, signed as PayPal documents: SHA256withRSA over
/// "<transmission id>|<transmission time>|<webhook id>|<crc32 of the body>", here with a test key
/// whose certificate the server is given (PayPalTestKeys).
@Suite struct PayPalWebhookTests {
    static let webhookId = "WH-1TEST00000000000-TESTWEBHOOK"

    /// CRC-32 computed with a lookup table (the server computes it bit by bit).
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        let table: [UInt32] = (0..<256).map { n in
            (0..<8).reduce(UInt32(n)) { c, _ in c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return ~bytes.reduce(UInt32.max) { table[Int(($0 ^ UInt32($1)) & 0xFF)] ^ ($0 >> 8) }
    }

    static func headers(for body: String, id: String = UUID().uuidString, time: String = "2026-12-01T16:00:00Z",
                        webhookId: String = webhookId) throws -> HTTPFields {
        let key = try _RSA.Signing.PrivateKey(pemRepresentation: PayPalTestKeys.privateKeyPEM)
        let message = "\(id)|\(time)|\(webhookId)|\(crc32(Array(body.utf8)))"
        let sig = try key.signature(for: Array(message.utf8), padding: .insecurePKCS1v1_5)
        return [
            .contentType: "application/json",
            HTTPField.Name("PAYPAL-TRANSMISSION-ID")!: id,
            HTTPField.Name("PAYPAL-TRANSMISSION-TIME")!: time,
            HTTPField.Name("PAYPAL-TRANSMISSION-SIG")!: sig.rawRepresentation.base64EncodedString(),
            HTTPField.Name("PAYPAL-AUTH-ALGO")!: "SHA256withRSA",
            HTTPField.Name("PAYPAL-CERT-URL")!: "https://api.paypal.com/v1/notifications/certs/CERT-TEST",
        ]
    }

    /// A v2 webhook event as PayPal sends it (event_version 1.0, resource_version 2.0).
    static func event(_ id: String, _ type: String, resource: String) -> String {
        #"{"id":"\#(id)","event_version":"1.0","create_time":"2026-12-01T16:00:00.000Z","resource_type":"\#(type.contains("REFUNDED") || type.contains("REVERSED") ? "refund" : "capture")","resource_version":"2.0","event_type":"\#(type)","summary":"test","resource":\#(resource),"links":[]}"#
    }

    static func capture(_ id: String, status: String = "COMPLETED", value: String = "20.00", custom: String = "pp_user|creator") -> String {
        #"{"id":"\#(id)","amount":{"currency_code":"USD","value":"\#(value)"},"final_capture":true,"seller_protection":{"status":"ELIGIBLE"},"custom_id":"\#(custom)","status":"\#(status)","create_time":"2026-12-01T16:00:00Z","links":[{"href":"https://api.paypal.com/v2/payments/captures/\#(id)","rel":"self","method":"GET"}]}"#
    }

    /// A refund resource; without `total`, its breakdown has no `total_refunded_amount` (optional
    /// in PayPal's schema).
    static func refund(capture: String, value: String, total: String?, id: String? = nil) -> String {
        let refundId = id ?? "RF\(capture)\(total ?? "")"
        let totalField = total.map { #","total_refunded_amount":{"currency_code":"USD","value":"\#($0)"}"# } ?? ""
        return #"{"id":"\#(refundId)","amount":{"currency_code":"USD","value":"\#(value)"},"seller_payable_breakdown":{"gross_amount":{"currency_code":"USD","value":"\#(value)"}\#(totalField)},"status":"COMPLETED","links":[{"href":"https://api.paypal.com/v2/payments/refunds/\#(refundId)","rel":"self","method":"GET"},{"href":"https://api.paypal.com/v2/payments/captures/\#(capture)","rel":"up","method":"GET"}]}"#
    }

    func withPayPalApp(_ body: @Sendable (any TestClientProtocol, SQLiteStore) async throws -> Void) async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let store = try SQLiteStore(path: dir.path + "/ledger.sqlite")
        var config = ServerConfiguration(serviceKey: serviceKey, adminKey: adminKey)
        config.paypalWebhookId = Self.webhookId
        config.paypalCertificatePEM = PayPalTestKeys.certificatePEM
        try config.checkPayPal()
        let app = buildApplication(store: store, configuration: config, logger: .init(label: "test"))
        try await app.test(.router) { client in try await body(client, store) }
        try await store.close()
    }

    func post(_ client: any TestClientProtocol, _ body: String, headers: HTTPFields) async throws -> Reply {
        try await client.execute(uri: "/api/webhooks/paypal", method: .post, headers: headers, body: ByteBuffer(string: body)) {
            Reply(status: Int($0.status.code), headers: $0.headers, text: String(buffer: $0.body))
        }
    }

    @discardableResult
    func deliver(_ client: any TestClientProtocol, _ body: String) async throws -> Reply {
        let r = try await post(client, body, headers: try Self.headers(for: body))
        #expect(r.status == 200, "\(r.text)")
        return r
    }

    @Test func crc32MatchesTheStandardCheckValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(Self.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
    }

    @Test func completedRefundedAndReversedCapturesMoveCreditsOnce() async throws {
        try await withPayPalApp { client, store in
            let completed = Self.event("WH-1", "PAYMENT.CAPTURE.COMPLETED", resource: Self.capture("CAP1"))
            let answers = try await withThrowingTaskGroup(of: Reply.self) { group in
                for _ in 0..<3 { group.addTask { try await self.post(client, completed, headers: try Self.headers(for: completed)) } }
                return try await group.reduce(into: [Reply]()) { $0.append($1) }
            }
            #expect(answers.allSatisfy { $0.status == 200 })
            #expect(answers.filter { $0.int("creditsChange") == 550 && $0["applied"] as? Bool == true }.count == 1)
            // The platform's purchase call for the same capture: the same purchase, no second grant.
            let call = try await client.call(.post, "/api/credits/purchase",
                body: #"{"userId":"pp_user","package":"creator","paymentMethod":"paypal","paymentId":"CAP1"}"#)
            #expect(call.status == 201 && call.int("balance") == 550)

            let refunded = try await deliver(client, Self.event("WH-2", "PAYMENT.CAPTURE.REFUNDED",
                                                                resource: Self.refund(capture: "CAP1", value: "5.00", total: "5.00")))
            #expect(refunded.int("creditsChange") == -137 && refunded.string("status") == "partially_refunded")
            let reversed = try await deliver(client, Self.event("WH-3", "PAYMENT.CAPTURE.REVERSED",
                                                                resource: Self.refund(capture: "CAP1", value: "15.00", total: "20.00")))
            #expect(reversed.int("creditsChange") == -413 && reversed.string("status") == "reversed")

            _ = try await client.call(.post, "/api/credits/purchase",
                body: #"{"userId":"pp_user","package":"creator","paymentMethod":"paypal","paymentId":"CAP2"}"#)
            let denied = Self.event("WH-4", "PAYMENT.CAPTURE.DENIED", resource: Self.capture("CAP2", status: "DENIED"))
            let answer = try await deliver(client, denied)
            #expect(answer.string("status") == "failed" && answer.int("creditsChange") == -550)
            #expect(try await store.balance(userId: "pp_user").balance == 0)
            #expect(try await store.reconcile().ok)
        }
    }

    /// A completed capture must say a positive amount in dollars: 0 reads as "not said" in the
    /// ledger and would grant the package's price. Until 2026-12-05 each of these granted 550.
    @Test func aCompletedCaptureWithoutAPositiveAmountIsNotApplied() async throws {
        try await withPayPalApp { client, store in
            var bodies = ["-20.00", "20.001", "0.00", "1e3", ""].enumerated().map { i, value in
                Self.event("WH-A\(i)", "PAYMENT.CAPTURE.COMPLETED", resource: Self.capture("CAPA\(i)", value: value))
            }
            bodies.append(Self.event("WH-A9", "PAYMENT.CAPTURE.COMPLETED", resource:
                #"{"id":"CAPA9","amount":{"currency_code":"USD","value":20},"custom_id":"pp_user|creator","status":"COMPLETED"}"#))
            for body in bodies {
                let r = try await deliver(client, body)
                #expect(r["applied"] as? Bool == false && r.string("detail")?.contains("amount") == true, "\(r.text)")
            }
            #expect(try await store.balance(userId: "pp_user") == UserCredits(userId: "pp_user"))
            let good = try await deliver(client, Self.event("WH-A10", "PAYMENT.CAPTURE.COMPLETED", resource: Self.capture("CAPA0")))
            #expect(good.int("creditsChange") == 550, "\(good.text)")
            #expect(try await store.reconcile().ok)
        }
    }

    /// Partial refunds whose events carry no `total_refunded_amount` add up, each refund once:
    /// $5 then $7 of $20 take back 137, then 330 in all; the $7 refund told again by another event
    /// changes nothing; a last $8 refund whose event reports the $20 total refunds the rest.
    @Test func partialRefundsWithoutATotalAddUp() async throws {
        try await withPayPalApp { client, store in
            try await deliver(client, Self.event("WH-50", "PAYMENT.CAPTURE.COMPLETED", resource: Self.capture("CAP5", custom: "pp_u5|creator")))
            func refund(_ event: String, _ id: String, _ value: String, total: String? = nil) async throws -> Reply {
                try await deliver(client, Self.event(event, "PAYMENT.CAPTURE.REFUNDED",
                                                     resource: Self.refund(capture: "CAP5", value: value, total: total, id: id)))
            }
            let first = try await refund("WH-51", "RF-51", "5.00")
            #expect(first.int("creditsChange") == -137 && first.string("status") == "partially_refunded")
            let second = try await refund("WH-52", "RF-52", "7.00")
            #expect(second.int("creditsChange") == -(330 - 137) && second.string("status") == "partially_refunded")
            let redelivered = try await refund("WH-52", "RF-52", "7.00")
            #expect(redelivered["applied"] as? Bool == false && redelivered.int("creditsChange") == -(330 - 137))
            let toldAgain = try await refund("WH-53", "RF-52", "7.00")
            #expect(toldAgain["applied"] as? Bool == true && toldAgain.int("creditsChange") == 0)
            let last = try await refund("WH-54", "RF-54", "8.00", total: "20.00")
            #expect(last.int("creditsChange") == -(550 - 330) && last.string("status") == "refunded")
            #expect(try await store.balance(userId: "pp_u5").balance == 0)
            let report = try await store.reconcile()
            #expect(report.ok, "\(report.problems)")
        }
    }

    @Test func badTransmissionsAreRefusedAndChangeNothing() async throws {
        try await withPayPalApp { client, store in
            let body = Self.event("WH-9", "PAYMENT.CAPTURE.COMPLETED", resource: Self.capture("CAP9"))
            let good = try Self.headers(for: body)
            var wrongWebhook = try Self.headers(for: body, webhookId: "WH-SOMEONE-ELSE")
            wrongWebhook[HTTPField.Name("PAYPAL-TRANSMISSION-ID")!] = good[HTTPField.Name("PAYPAL-TRANSMISSION-ID")!]
            var otherTime = good
            otherTime[HTTPField.Name("PAYPAL-TRANSMISSION-TIME")!] = "2026-12-01T16:00:01Z"
            var noSig = good
            noSig[HTTPField.Name("PAYPAL-TRANSMISSION-SIG")!] = nil
            var otherAlgo = good
            otherAlgo[HTTPField.Name("PAYPAL-AUTH-ALGO")!] = "SHA1withRSA"
            let cases: [(String, HTTPFields)] = [
                (body.replacingOccurrences(of: "20.00", with: "2000.00"), good),  // altered after signing
                (body, wrongWebhook), (body, otherTime), (body, noSig), (body, otherAlgo),
            ]
            for (payload, headers) in cases {
                let r = try await post(client, payload, headers: headers)
                #expect(r.status == 400, "\(r.text)")
            }
            #expect(try await store.reconcile().journalRows == 0)
            #expect(try await post(client, body, headers: good).status == 200)
            #expect(try await store.balance(userId: "pp_user").balance == 550)
        }
    }

    @Test func settingsMustComeTogetherAndTheCertificateMustParse() throws {
        var config = ServerConfiguration(serviceKey: serviceKey, adminKey: adminKey)
        config.paypalWebhookId = Self.webhookId
        #expect(throws: CreditsError.self) { try config.checkPayPal() }
        config.paypalCertificatePEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        #expect(throws: (any Error).self) { try config.checkPayPal() }
        config.paypalCertificatePEM = PayPalTestKeys.certificatePEM
        try config.checkPayPal()
    }
}
