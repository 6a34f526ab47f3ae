import CreditsStore
import CreditsTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

/// Several `credits serve` processes on one PostgreSQL database, as behind a load balancer.
/// Runs when the test command started a PostgreSQL cluster (it always does; see scripts/test).
@Suite(.serialized, .enabled(if: PostgresTestDatabase.url != nil, "needs the test PostgreSQL cluster"))
struct MultiInstanceTests {
    /// Proves: the database, not process memory, judges between instances. 100 spends of 15
    /// against 300, spread over two instances, let exactly 20 through; the balance never goes
    /// below zero; the same request sent to both instances at the same moment applies once.
    /// Two `credits serve` processes on a fresh schema, ready, stopped afterwards.
    func withTwoInstances(
        environment: [String: String] = [:], arguments: [String] = [],
        _ body: (_ a: ServerProcess, _ b: ServerProcess, _ url: String) async throws -> Void
    ) async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let url = try await PostgresTestDatabase.freshSchemaURL()
        let a = try ServerProcess(database: url, logFile: dir.path + "/a.log", environment: environment, arguments: arguments)
        defer { a.stop() }
        let b = try ServerProcess(database: url, logFile: dir.path + "/b.log", environment: environment, arguments: arguments)
        defer { b.stop() }
        try await a.waitUntilReady()
        try await b.waitUntilReady()
        try await body(a, b, url)
    }

    @Test func twoInstancesShareOneLedgerWithoutOverspendOrDoubleApply() async throws {
        try await withTwoInstances { a, b, url in
            let ports = [a.port, b.port]

            let funded = try await HTTP.call(port: a.port, .post, "/api/admin/adjustments", key: adminKey,
                body: #"{"userId":"shared_u","credits":300,"adjustmentId":"fund-shared","reason":"test"}"#)
            #expect(funded.status == 201)
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<100 {
                    group.addTask {
                        try await HTTP.call(port: ports[i % 2], .post, "/api/credits/spend",
                            body: #"{"userId":"shared_u","credits":15,"fileUploadId":"shared_\#(i)"}"#).status
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 201 }.count == 20)
            #expect(statuses.filter { $0 == 402 }.count == 80)
            let balance = try await HTTP.call(port: b.port, .get, "/api/credits/balance?userId=shared_u")
            #expect(balance.int("balance") == 0)

            // The same request (same body, same Idempotency-Key) to both instances at once.
            _ = try await HTTP.call(port: a.port, .post, "/api/admin/adjustments", key: adminKey,
                body: #"{"userId":"dup_u","credits":10000,"adjustmentId":"fund-dup","reason":"test"}"#)
            for i in 0..<40 {
                let body = #"{"userId":"dup_u","credits":7,"fileUploadId":"dup_\#(i)"}"#
                async let first = HTTP.call(port: a.port, .post, "/api/credits/spend", body: body, idempotencyKey: "dup-key-\(i)")
                async let second = HTTP.call(port: b.port, .post, "/api/credits/spend", body: body, idempotencyKey: "dup-key-\(i)")
                let (r1, r2) = try await (first, second)
                #expect(r1.status == 201 && r2.status == 201, "\(r1.text) / \(r2.text)")
                #expect([r1.replayed, r2.replayed].filter { !$0 }.count == 1, "request \(i) applied \([r1.replayed, r2.replayed])")
                #expect(r1.string("transactionId") == r2.string("transactionId"))
            }
            let dup = try await HTTP.call(port: a.port, .get, "/api/credits/balance?userId=dup_u")
            #expect(dup.int("balance") == Int64(10000 - 40 * 7))

            let reconcile = try await runCredits(["reconcile", "--database", url])
            #expect(reconcile.status == 0, "\(reconcile.output)")
        }
    }

    /// Proves: killing one instance with SIGKILL mid-load loses no acknowledged operation. Both
    /// instances take spends; one is killed; every spend either instance acknowledged replays
    /// from the survivor with its transaction id, and the ledger reconciles.
    @Test func sigkillOfOneInstanceLosesNoAcknowledgedSpend() async throws {
        try await withTwoInstances { victim, survivor, url in
            let users = (0..<4).map { "mi_u\($0)" }
            for user in users {
                _ = try await HTTP.call(port: survivor.port, .post, "/api/admin/adjustments", key: adminKey,
                    body: #"{"userId":"\#(user)","credits":1000000,"adjustmentId":"fund-\#(user)","reason":"test"}"#)
            }

            let acked = try await spendLoad(ports: [victim.port, survivor.port], users: users, clients: 16, ackedBeforeKill: 600) {
                victim.kill9()
            }
            print("multi-instance crash test: \(acked.count) spends acknowledged")
            #expect(acked.count >= 100)
            try await expectAcknowledgedSpendsReplay(acked, port: survivor.port)
            let reconcile = try await runCredits(["reconcile", "--database", url])
            #expect(reconcile.status == 0, "\(reconcile.output)")
        }
    }

    /// Proves: a provider event delivered to two instances at the same moment, and the platform's
    /// purchase call racing it, move credits once. Per payment: the succeeded event to both
    /// instances, the purchase call to one, then a partial refund to both. Each event is applied
    /// by exactly one instance; every buyer ends with 550 − floor(550 × 500 / 2000) = 413.
    @Test func webhookDuplicatesOnTwoInstancesApplyOnce() async throws {
        try await withTwoInstances(environment: ["STRIPE_WEBHOOK_SECRET": StripeWebhookTests.secret]) { a, b, url in
            func deliver(_ port: Int, _ body: String) async throws -> Reply {
                let headers: HTTPFields = [
                    .contentType: "application/json",
                    HTTPField.Name("Stripe-Signature")!: StripeWebhookTests.signature(body, at: Int64(Date().timeIntervalSince1970)),
                ]
                return try await HTTP.post(port: port, "/api/webhooks/stripe", body: body, headers: headers)
            }
            for i in 0..<20 {
                let user = "hook_u\(i)"
                let succeeded = StripeWebhookTests.succeeded("evt_ok_\(i)", intent: "pi_mi_\(i)", userId: user)
                async let first = deliver(a.port, succeeded)
                async let second = deliver(b.port, succeeded)
                async let call = HTTP.call(port: i % 2 == 0 ? a.port : b.port, .post, "/api/credits/purchase",
                    body: #"{"userId":"\#(user)","package":"creator","paymentMethod":"stripe","paymentId":"pi_mi_\#(i)"}"#)
                let (r1, r2, r3) = try await (first, second, call)
                #expect(r1.status == 200 && r2.status == 200 && r3.status == 201, "\(r1.text) / \(r2.text) / \(r3.text)")
                #expect([r1, r2].filter { $0["applied"] as? Bool == true }.count == 1, "\(r1.text) / \(r2.text)")

                let refund = StripeWebhookTests.envelope("evt_rf_\(i)", "charge.refunded", StripeWebhookTests.charge(intent: "pi_mi_\(i)", refunded: 500))
                async let r4 = deliver(a.port, refund)
                async let r5 = deliver(b.port, refund)
                let refunds = try await [r4, r5]
                #expect(refunds.filter { $0["applied"] as? Bool == true }.count == 1)
                #expect(refunds.compactMap { $0.int("creditsChange") }.contains(-137))
                let balance = try await HTTP.call(port: b.port, .get, "/api/credits/balance?userId=\(user)")
                #expect(balance.int("balance") == 413)
            }
            let reconcile = try await runCredits(["reconcile", "--database", url])
            #expect(reconcile.status == 0, "\(reconcile.output)")
        }
    }

    /// Two instances, each with its own gas manager, on one database: every queued upload is
    /// claimed by exactly one of them (the claim is a conditional status change), confirmed and
    /// captured once; no upload appears in two confirmed messages.
    @Test func twoGasManagersClaimDisjointBatches() async throws {
        try await withTwoInstances(arguments: ["--chain-epoch-ms", "300", "--worker-tick-ms", "200"]) { a, b, url in
            let ports = [a.port, b.port]
            _ = try await HTTP.call(port: a.port, .post, "/api/admin/adjustments", key: adminKey,
                body: #"{"userId":"gm_u","credits":10000,"adjustmentId":"fund-gm","reason":"test","category":"paid"}"#)
            for i in 0..<40 {
                let r = try await HTTP.call(port: ports[i % 2], .post, "/api/uploads",
                    body: #"{"uploadId":"gm_\#(i)","userId":"gm_u","fileType":"audio","sizeBytes":1000,"priority":"low"}"#)
                #expect(r.status == 202)
            }
            // Both managers race to batch the same queue.
            async let forcedA = HTTP.call(port: a.port, .post, "/api/admin/process-batch", key: adminKey, body: "{}")
            async let forcedB = HTTP.call(port: b.port, .post, "/api/admin/process-batch", key: adminKey, body: "{}")
            _ = try await (forcedA, forcedB)
            var confirmed = 0
            for _ in 0..<150 {
                confirmed = 0
                for i in 0..<40 where try await HTTP.call(port: ports[i % 2], .get, "/api/uploads/gm_\(i)").string("status") == "confirmed" {
                    confirmed += 1
                }
                if confirmed == 40 { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(confirmed == 40)
            let balance = try await HTTP.call(port: b.port, .get, "/api/credits/balance?userId=gm_u")
            #expect(balance.int("balance") == 10_000 - 40 * 15 && balance.int("reserved") == 0 && balance.int("totalSpent") == 600)
            let store = try await PostgresStore(url: url)
            let txs = try await store.gasTransactions(sinceMs: 0, limit: 1_000)
            let confirmedIds = txs.filter { $0.status == .confirmed }.flatMap(\.uploadIds)
            #expect(confirmedIds.count == 40 && Set(confirmedIds).count == 40, "\(confirmedIds.sorted())")
            try await store.close()
            let reconcile = try await runCredits(["reconcile", "--database", url])
            #expect(reconcile.status == 0, "\(reconcile.output)")
        }
    }
}
