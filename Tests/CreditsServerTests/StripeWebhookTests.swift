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

/// Stripe webhooks, signed with Stripe's documented scheme (HMAC-SHA256 of "<t>.<body>"), with
/// event bodies shaped as Stripe's API reference shows them (Event, PaymentIntent, Charge, Dispute).
@Suite struct StripeWebhookTests {
    static let secret = "whsec_test_secret"
    static let now: Int64 = 1_800_000_000_000

    static func envelope(_ id: String, _ type: String, _ object: String) -> String {
        #"{"id":"\#(id)","object":"event","api_version":"2024-06-20","created":1800000000,"data":{"object":\#(object)},"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"type":"\#(type)"}"#
    }

    static func intent(_ id: String, status: String = "succeeded", amount: Int = 2000, userId: String = "stripe_u",
                       package: String = "creator") -> String {
        #"{"id":"\#(id)","object":"payment_intent","amount":\#(amount),"amount_capturable":0,"amount_received":\#(status == "succeeded" ? amount : 0),"capture_method":"automatic","currency":"usd","customer":null,"last_payment_error":null,"latest_charge":"ch_\#(id)","livemode":false,"metadata":{"userId":"\#(userId)","package":"\#(package)"},"payment_method_types":["card"],"status":"\#(status)"}"#
    }

    static func charge(intent: String, amount: Int = 2000, refunded: Int) -> String {
        #"{"id":"ch_\#(intent)","object":"charge","amount":\#(amount),"amount_captured":\#(amount),"amount_refunded":\#(refunded),"captured":true,"currency":"usd","disputed":false,"livemode":false,"metadata":{},"paid":true,"payment_intent":"\#(intent)","refunded":\#(refunded >= amount),"status":"succeeded"}"#
    }

    static func dispute(intent: String, status: String) -> String {
        #"{"id":"dp_\#(intent)","object":"dispute","amount":2000,"balance_transactions":[],"charge":"ch_\#(intent)","created":1800000000,"currency":"usd","is_charge_refundable":false,"livemode":false,"metadata":{},"payment_intent":"\#(intent)","reason":"fraudulent","status":"\#(status)"}"#
    }

    static func succeeded(_ id: String, intent: String, userId: String = "stripe_u", package: String = "creator") -> String {
        envelope(id, "payment_intent.succeeded", Self.intent(intent, userId: userId, package: package))
    }

    static func signature(_ body: String, secret: String = secret, at seconds: Int64 = now / 1000) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(seconds).\(body)".utf8), using: SymmetricKey(data: Array(secret.utf8)))
        return "t=\(seconds),v1=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    func withStripeApp(
        requireConfirmation: Bool = false, _ body: @Sendable (any TestClientProtocol, SQLiteStore) async throws -> Void
    ) async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let store = try SQLiteStore(path: dir.path + "/ledger.sqlite")
        var config = ServerConfiguration(serviceKey: serviceKey, adminKey: adminKey, clock: WallClock { Self.now })
        config.stripeWebhookSecrets = ["whsec_old_rotated_out", Self.secret]
        config.requirePaymentConfirmation = requireConfirmation
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

    /// Signs and delivers; expects 200.
    @discardableResult
    func deliver(_ client: any TestClientProtocol, _ body: String) async throws -> Reply {
        let r = try await post(client, body, signature: Self.signature(body))
        #expect(r.status == 200, "\(r.text)")
        return r
    }

    func buy(_ client: any TestClientProtocol, _ user: String, _ package: String, _ paymentId: String) async throws -> Reply {
        try await client.call(.post, "/api/credits/purchase",
            body: #"{"userId":"\#(user)","package":"\#(package)","paymentMethod":"stripe","paymentId":"\#(paymentId)"}"#)
    }

    @Test func aSignedSucceededEventDeliveredThreeTimesConcurrentlyGrantsOnce() async throws {
        try await withStripeApp { client, store in
            let body = Self.succeeded("evt_1", intent: "pi_1")
            let sig = Self.signature(body)
            let answers = try await withThrowingTaskGroup(of: Reply.self) { group in
                for _ in 0..<3 { group.addTask { try await self.post(client, body, signature: sig) } }
                return try await group.reduce(into: [Reply]()) { $0.append($1) }
            }
            #expect(answers.allSatisfy { $0.status == 200 })
            #expect(answers.filter { $0["applied"] as? Bool == true }.count == 1)
            #expect(answers.filter { $0.string("detail") == "already applied" }.count == 2)
            #expect(try await store.balance(userId: "stripe_u").balance == 550)
            #expect(try await store.reconcile().ok)
        }
    }

    /// A success must say what it collected: an amount of 0 reads as "not said" in the ledger
    /// and would grant the package's price. Until 2026-12-05 each of these granted 550.
    @Test func aSucceededEventWithoutAPositiveAmountIsNotApplied() async throws {
        try await withStripeApp { client, store in
            let metadata = #""currency":"usd","metadata":{"userId":"stripe_u","package":"creator"},"status":"succeeded""#
            let bodies = [
                Self.envelope("evt_a0", "payment_intent.succeeded", Self.intent("pi_a0", amount: 0)),
                Self.envelope("evt_a1", "payment_intent.succeeded", #"{"id":"pi_a1","object":"payment_intent","amount":2000,"amount_received":20.5,\#(metadata)}"#),
                Self.envelope("evt_a2", "payment_intent.succeeded", #"{"id":"pi_a2","object":"payment_intent","amount":2000,"amount_received":null,\#(metadata)}"#),
                Self.envelope("evt_a3", "payment_intent.succeeded", #"{"id":"pi_a3","object":"payment_intent",\#(metadata)}"#),
            ]
            for body in bodies {
                let r = try await deliver(client, body)
                #expect(r["applied"] as? Bool == false && r.string("detail")?.contains("amount_received") == true, "\(r.text)")
            }
            #expect(try await store.balance(userId: "stripe_u") == UserCredits(userId: "stripe_u"))
            // The intent's event with its amount still applies.
            let good = try await deliver(client, Self.succeeded("evt_a4", intent: "pi_a0"))
            #expect(good.int("creditsChange") == 550, "\(good.text)")
            #expect(try await store.reconcile().ok)
        }
    }

    @Test func badSignaturesAreRefusedAndChangeNothing() async throws {
        try await withStripeApp { client, store in
            let body = Self.succeeded("evt_2", intent: "pi_2")
            let cases: [(String, String?)] = [
                (body, nil),
                (body, Self.signature(body, secret: "whsec_wrong")),
                (body, Self.signature(body, at: Self.now / 1000 - 301)),  // stale
                (body, Self.signature(body, at: Self.now / 1000 + 301)),  // from the future
                (body.replacingOccurrences(of: "creator", with: "pro"), Self.signature(body)),  // altered after signing
                (body, "t=\(Self.now / 1000),v1=zz"),
            ]
            for (payload, sig) in cases {
                let r = try await post(client, payload, signature: sig)
                #expect(r.status == 400, "\(sig ?? "no header")")
                #expect(r.string("error") == "VALIDATION_ERROR")
            }
            #expect(try await store.balance(userId: "stripe_u").balance == 0)
            #expect(try await store.reconcile().journalRows == 0)
            // Signed with the second (rotation) secret, 300 s old: accepted.
            #expect(try await post(client, body, signature: Self.signature(body, at: Self.now / 1000 - 300)).status == 200)
            #expect(try await store.balance(userId: "stripe_u").balance == 550)
        }
    }

    @Test func purchaseCallAndEventGrantOnceInEitherOrder() async throws {
        try await withStripeApp { client, store in
            // The purchase call first, then the event: the event confirms, grants nothing more.
            let first = try await buy(client, "stripe_u", "creator", "pi_a")
            #expect(first.status == 201 && first.string("status") == "completed")
            let a = try await deliver(client, Self.succeeded("evt_a", intent: "pi_a"))
            #expect(a["applied"] as? Bool == true && a.int("creditsChange") == 0 && a.string("purchaseId") == first.string("purchaseId"))
            // The event first, then the purchase call: one grant, one purchase.
            let b = try await deliver(client, Self.succeeded("evt_b", intent: "pi_b"))
            #expect(b.int("creditsChange") == 550)
            let call = try await buy(client, "stripe_u", "creator", "pi_b")
            #expect(call.status == 201 && call.string("purchaseId") == b.string("purchaseId") && call.int("balance") == 1_100)
            #expect(try await store.balance(userId: "stripe_u").balance == 1_100)
            // Another user cannot claim a payment already bought.
            let other = try await buy(client, "someone_else", "creator", "pi_b")
            #expect(other.status == 409)
            #expect(try await store.reconcile().ok)
        }
    }

    /// A full refund after the credits were spent: the account goes into arrears, spending and
    /// uploads answer 402 ACCOUNT_IN_ARREARS with the amount owed, and the next purchase repays it.
    @Test func refundBeyondTheBalanceLeavesArrearsThatTheNextPurchaseRepays() async throws {
        try await withStripeApp { client, store in
            _ = try await buy(client, "u_arrears", "creator", "pi_r")
            let spent = try await client.call(.post, "/api/credits/spend",
                body: #"{"userId":"u_arrears","credits":500,"fileUploadId":"up_r"}"#)
            #expect(spent.int("balance") == 50)
            let refund = try await deliver(client, Self.envelope("evt_r", "charge.refunded", Self.charge(intent: "pi_r", refunded: 2000)))
            #expect(refund.int("creditsChange") == -550)
            #expect(refund.string("status") == "refunded")

            let balance = try await client.call(.get, "/api/credits/balance?userId=u_arrears")
            #expect(balance.int("balance") == -500 && balance.int("arrears") == 500)
            let refused = try await client.call(.post, "/api/credits/spend",
                body: #"{"userId":"u_arrears","credits":1,"fileUploadId":"up_r2"}"#)
            #expect(refused.status == 402 && refused.string("error") == "ACCOUNT_IN_ARREARS" && refused.int("owed") == 500)
            let upload = try await client.call(.post, "/api/uploads",
                body: #"{"uploadId":"file_r","userId":"u_arrears","fileType":"audio","sizeBytes":1000,"priority":"low"}"#)
            #expect(upload.status == 402 && upload.string("error") == "ACCOUNT_IN_ARREARS")

            let repay = try await buy(client, "u_arrears", "pro", "pi_r2")
            #expect(repay.int("arrearsRepaid") == 500)
            #expect(repay.int("balance") == 1_800)  // 2,300 − 500 owed
            #expect(try await client.call(.post, "/api/credits/spend",
                body: #"{"userId":"u_arrears","credits":1,"fileUploadId":"up_r3"}"#).status == 201)
            let report = try await store.reconcile()
            #expect(report.ok, "\(report.problems)")
            // The money came back to the buyer: platform stats count it.
            // (The store stamps rows with the real time; the report's clock is this test's.)
            let stats = try await client.call(.get, "/api/admin/platform-stats?days=365", key: adminKey)
            #expect(stats.string("totalRevenue") == "80.00" && stats.string("refunds") == "20.00", "\(stats.text)")
            #expect(stats.string("netRevenue") == "60.00")
            #expect(stats.string("paymentFees") == "2.92")  // (58 + 30) + (174 + 30) cents
            #expect(stats.string("grossMargin") == "57.08")
            #expect(stats.int("creditsOutstanding") == 1_799)  // 1,800 less the 1 spent after repaying
        }
    }

    /// Partial refunds take back floor(credits × refunded / paid); Stripe's amount_refunded is a
    /// running total, so a late, smaller total changes nothing.
    @Test func partialRefundsAreExactAndOrderFree() async throws {
        try await withStripeApp { client, store in
            _ = try await buy(client, "u_part", "creator", "pi_p")
            let r1 = try await deliver(client, Self.envelope("evt_p2", "charge.refunded", Self.charge(intent: "pi_p", refunded: 1000)))
            #expect(r1.int("creditsChange") == -275)  // floor(550 × 1000 / 2000)
            #expect(r1.string("status") == "partially_refunded")
            let late = try await deliver(client, Self.envelope("evt_p1", "charge.refunded", Self.charge(intent: "pi_p", refunded: 500)))
            #expect(late.int("creditsChange") == 0)
            let r3 = try await deliver(client, Self.envelope("evt_p3", "charge.refunded", Self.charge(intent: "pi_p", refunded: 1999)))
            #expect(r3.int("creditsChange") == -(549 - 275))  // floor(550 × 1999 / 2000) = 549
            #expect(try await store.balance(userId: "u_part").balance == 1)
            #expect(try await store.reconcile().ok)
        }
    }

    /// The refund arrives before the payment's success (out of order): it is recorded, and the
    /// success grants the package and takes the refunded share back at once.
    @Test func refundBeforeSucceededStillEndsRight() async throws {
        try await withStripeApp { client, store in
            let early = try await deliver(client, Self.envelope("evt_o1", "charge.refunded", Self.charge(intent: "pi_o", refunded: 500)))
            #expect(early["applied"] as? Bool == true && early.string("status") == "unclaimed")
            #expect(try await store.reconcile().journalRows == 0)
            let ok = try await deliver(client, Self.succeeded("evt_o2", intent: "pi_o", userId: "u_order"))
            #expect(ok.int("creditsChange") == 413)  // 550 − floor(550 × 500 / 2000) = 550 − 137
            #expect(ok.string("status") == "partially_refunded")
            #expect(try await store.balance(userId: "u_order").balance == 413)
            #expect(try await store.reconcile().ok)
        }
    }

    @Test func aFailedPaymentTakesBackTheWholeGrant() async throws {
        try await withStripeApp { client, store in
            _ = try await buy(client, "u_fail", "starter", "pi_f")
            let failed = try await deliver(client, Self.envelope("evt_f", "payment_intent.payment_failed",
                                                                 Self.intent("pi_f", status: "requires_payment_method", amount: 500, package: "starter")))
            #expect(failed.int("creditsChange") == -100 && failed.string("status") == "failed")
            #expect(try await store.balance(userId: "u_fail").balance == 0)
            #expect(try await store.reconcile().ok)
        }
    }

    @Test func requirePaymentConfirmationGrantsOnlyWithTheVerifiedEvent() async throws {
        try await withStripeApp(requireConfirmation: true) { client, store in
            let pending = try await buy(client, "u_wait", "creator", "pi_w")
            #expect(pending.status == 202 && pending.string("status") == "pending" && pending.int("balance") == 0)
            #expect(try await client.call(.post, "/api/credits/spend",
                body: #"{"userId":"u_wait","credits":1,"fileUploadId":"up_w"}"#).status == 402)
            let ok = try await deliver(client, Self.succeeded("evt_w", intent: "pi_w", userId: "u_wait"))
            #expect(ok.int("creditsChange") == 550 && ok.string("status") == "completed")
            // A failed payment never grants.
            _ = try await buy(client, "u_wait", "creator", "pi_w2")
            let failed = try await deliver(client, Self.envelope("evt_w2", "payment_intent.payment_failed",
                                                                 Self.intent("pi_w2", status: "requires_payment_method", userId: "u_wait")))
            #expect(failed.int("creditsChange") == 0 && failed.string("status") == "failed")
            #expect(try await store.balance(userId: "u_wait").balance == 550)
            #expect(try await store.reconcile().ok)
        }
    }

    @Test func disputesTakeBackWhileOpenRestoreWhenWonKeepWhenLost() async throws {
        try await withStripeApp { client, store in
            _ = try await buy(client, "u_disp", "creator", "pi_d1")
            _ = try await buy(client, "u_disp", "creator", "pi_d2")
            let opened = try await deliver(client, Self.envelope("evt_d1", "charge.dispute.created", Self.dispute(intent: "pi_d1", status: "needs_response")))
            #expect(opened.int("creditsChange") == -550 && opened.string("status") == "disputed")
            let won = try await deliver(client, Self.envelope("evt_d2", "charge.dispute.closed", Self.dispute(intent: "pi_d1", status: "won")))
            #expect(won.int("creditsChange") == 550 && won.string("status") == "completed")
            _ = try await deliver(client, Self.envelope("evt_d3", "charge.dispute.created", Self.dispute(intent: "pi_d2", status: "needs_response")))
            let lost = try await deliver(client, Self.envelope("evt_d4", "charge.dispute.closed", Self.dispute(intent: "pi_d2", status: "lost")))
            #expect(lost.int("creditsChange") == 0 && lost.string("status") == "reversed")
            #expect(try await store.balance(userId: "u_disp").balance == 550)
            let report = try await store.reconcile()
            #expect(report.ok, "\(report.problems)")
        }
    }

    @Test func unknownEventTypesAreAcknowledgedAndIgnored() async throws {
        try await withStripeApp { client, store in
            let unknown = Self.envelope("evt_u", "customer.created", #"{"id":"cus_1","object":"customer"}"#)
            let r = try await deliver(client, unknown)
            #expect(r["applied"] as? Bool == false)
            #expect(try await store.reconcile().journalRows == 0)
        }
    }
}
