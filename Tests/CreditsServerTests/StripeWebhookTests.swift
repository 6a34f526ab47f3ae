import CreditsCore
import CreditsServer
import CreditsStore
import CreditsTestSupport
import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

/// Stripe webhooks, signed with Stripe's documented scheme: HMAC-SHA256 of "<t>.<body>".
@Suite struct StripeWebhookTests {
    static let secret = "whsec_test_secret"
    static let now: Int64 = 1_800_000_000_000

    static func event(id: String, type: String = "payment_intent.succeeded", intent: String, userId: String = "stripe_u",
                      package: String = "creator") -> String {
        #"{"id":"\#(id)","object":"event","api_version":"2024-06-20","created":1800000000,"type":"\#(type)","livemode":false,"data":{"object":{"id":"\#(intent)","object":"payment_intent","amount":2000,"amount_received":2000,"currency":"usd","status":"succeeded","metadata":{"userId":"\#(userId)","package":"\#(package)"}}}}"#
    }

    static func signature(_ body: String, secret: String = secret, at seconds: Int64 = now / 1000) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(seconds).\(body)".utf8), using: SymmetricKey(data: Array(secret.utf8)))
        return "t=\(seconds),v1=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    func withStripeApp(_ body: @Sendable (any TestClientProtocol, SQLiteStore) async throws -> Void) async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let store = try SQLiteStore(path: dir.path + "/ledger.sqlite")
        var config = ServerConfiguration(serviceKey: serviceKey, adminKey: adminKey, clock: WallClock { Self.now })
        config.stripeWebhookSecrets = ["whsec_old_rotated_out", Self.secret]
        let app = buildApplication(store: store, configuration: config, logger: .init(label: "test"))
        try await app.test(.router) { client in try await body(client, store) }
        try await store.close()
    }

    func post(_ client: any TestClientProtocol, _ body: String, signature: String?) async throws -> Reply {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let signature { headers[HTTPField.Name("Stripe-Signature")!] = signature }
        return try await client.execute(uri: "/api/webhooks/stripe", method: .post, headers: headers, body: ByteBuffer(string: body)) {
            Reply(status: Int($0.status.code), headers: $0.headers, text: String(buffer: $0.body))
        }
    }

    @Test func aSignedSucceededEventDeliveredThreeTimesConcurrentlyGrantsOnce() async throws {
        try await withStripeApp { client, store in
            let body = Self.event(id: "evt_1", intent: "pi_1")
            let sig = Self.signature(body)
            let answers = try await withThrowingTaskGroup(of: Reply.self) { group in
                for _ in 0..<3 { group.addTask { try await self.post(client, body, signature: sig) } }
                return try await group.reduce(into: [Reply]()) { $0.append($1) }
            }
            #expect(answers.allSatisfy { $0.status == 200 })
            #expect(answers.filter { $0["applied"] as? Bool == true }.count == 1)
            #expect(try await store.balance(userId: "stripe_u").balance == 550)
            #expect(try await store.reconcile().ok)
        }
    }

    @Test func badSignaturesAreRefusedAndChangeNothing() async throws {
        try await withStripeApp { client, store in
            let body = Self.event(id: "evt_2", intent: "pi_2")
            let cases: [(String, String?)] = [
                (body, nil),
                (body, Self.signature(body, secret: "whsec_wrong")),
                (body, Self.signature(body, at: Self.now / 1000 - 301)),  // stale
                (body.replacingOccurrences(of: "creator", with: "pro"), Self.signature(body)),  // altered after signing
                (body, "t=\(Self.now / 1000),v1=zz"),
            ]
            for (payload, sig) in cases {
                let r = try await post(client, payload, signature: sig)
                #expect(r.status == 400, "\(sig ?? "no header")")
            }
            #expect(try await store.balance(userId: "stripe_u").balance == 0)
            #expect(try await store.reconcile().journalRows == 0)
            // Signed with the second (rotation) secret: accepted.
            #expect(try await post(client, body, signature: Self.signature(body)).status == 200)
        }
    }

    @Test func purchaseCallAndEventGrantOnceInEitherOrder() async throws {
        try await withStripeApp { client, store in
            // The purchase call first, then the event.
            _ = try await client.call(.post, "/api/credits/purchase",
                body: #"{"userId":"stripe_u","package":"creator","paymentMethod":"stripe","paymentId":"pi_a"}"#)
            let late = Self.event(id: "evt_a", intent: "pi_a")
            let a = try await post(client, late, signature: Self.signature(late))
            #expect(a.status == 200 && a["applied"] as? Bool == false)
            // The event first, then the purchase call.
            let early = Self.event(id: "evt_b", intent: "pi_b")
            let b = try await post(client, early, signature: Self.signature(early))
            #expect(b.status == 200 && b["applied"] as? Bool == true)
            let call = try await client.call(.post, "/api/credits/purchase",
                body: #"{"userId":"stripe_u","package":"creator","paymentMethod":"stripe","paymentId":"pi_b"}"#)
            #expect(call.status == 201 && call.replayed)
            #expect(try await store.balance(userId: "stripe_u").balance == 1_100)
            #expect(try await store.reconcile().ok)
        }
    }

    @Test func otherEventTypes() async throws {
        try await withStripeApp { client, store in
            let unknown = Self.event(id: "evt_u", type: "customer.created", intent: "cus_1")
            let r = try await post(client, unknown, signature: Self.signature(unknown))
            #expect(r.status == 200 && r["applied"] as? Bool == false)
            // Known but not handled yet: not acknowledged, so Stripe retries it.
            let refund = Self.event(id: "evt_r", type: "charge.refunded", intent: "ch_1")
            #expect(try await post(client, refund, signature: Self.signature(refund)).status == 503)
            #expect(try await store.reconcile().journalRows == 0)
        }
    }
}
