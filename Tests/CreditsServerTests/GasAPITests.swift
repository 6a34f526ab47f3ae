import CreditsChain
import CreditsCore
import CreditsServer
import CreditsStore
import CreditsTestSupport
import CreditsWorker
import Foundation
import HummingbirdTesting
import Testing

/// The issue's HTTP scenario: queue 10 uploads, force a batch, see them confirmed, credits
/// captured, gas-stats updated. The chain is simulated on a clock the test moves.
@Suite struct GasAPITests {
    @Test func queueTenForceABatchSeeThemConfirmed() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let clock = VirtualClock(startMs: 5_000_000)
        let wall = clock.wallClock
        let store = try SQLiteStore(path: dir.path + "/ledger.sqlite", clock: wall)
        var chainConfig = SimulatedChain.Config()
        chainConfig.genesisMs = 5_000_000
        let manager = FilecoinGasManager(store: store, chain: SimulatedChain(config: chainConfig, clock: wall), clock: wall)
        let app = buildApplication(
            store: store, configuration: ServerConfiguration(serviceKey: serviceKey, adminKey: adminKey),
            logger: .init(label: "test"), gasManager: manager)
        try await app.test(.router) { client in
            _ = try await client.call(.post, "/api/credits/purchase",
                body: #"{"userId":"u1","package":"creator","paymentMethod":"stripe","paymentId":"pi_g1"}"#)
            for i in 0..<10 {
                let r = try await client.call(.post, "/api/uploads",
                    body: #"{"uploadId":"g\#(i)","userId":"u1","fileType":"audio","sizeBytes":1000,"priority":"low"}"#)
                #expect(r.status == 202)
            }
            // A misspelt batch id is refused, rather than taken as no id: that would send the
            // whole queue at once. The queue is still whole for the forced batch below.
            let misspelt = try await client.call(.post, "/api/admin/process-batch", key: adminKey, body: #"{"batchid":"batch_1"}"#)
            #expect(misspelt.status == 400 && misspelt.string("field") == "batchid", "\(misspelt.text)")
            let forced = try await client.call(.post, "/api/admin/process-batch", key: adminKey, body: "{}")
            #expect(forced.status == 200)
            #expect((forced["batches"] as? [String])?.count == 1)
            #expect(try await client.call(.post, "/api/admin/process-batch", key: serviceKey, body: "{}").status == 403)
            let unknown = try await client.call(.post, "/api/admin/process-batch", key: adminKey, body: #"{"batchId":"nope"}"#)
            #expect(unknown.status == 404)

            for _ in 0..<2 {
                clock.advance(ms: 30_000)
                await manager.step()
            }
            for i in 0..<10 {
                let u = try await client.call(.get, "/api/uploads/g\(i)")
                #expect(u.string("status") == "confirmed" && u.int("creditsCharged") == 15)
            }
            let balance = try await client.call(.get, "/api/credits/balance?userId=u1")
            #expect(balance.int("balance") == 400 && balance.int("reserved") == 0 && balance.int("totalSpent") == 150)
            let stats = try await client.call(.get, "/api/admin/gas-stats?days=7", key: adminKey)
            #expect(stats.status == 200)
            #expect(stats.int("batches") == 1 && stats.int("uploads") == 10)
            #expect(stats.string("averageBatchSize") == "10.00")
            #expect(stats.string("successRate") == "100.00")
            #expect(stats.string("batchingSavingsPercent") == "67.06")  // f(1 − 1/10) = 67.07%, from receipts
            for field in ["totalSavings", "gasSpentAttoFil", "gasSpentUsd", "individualCostUsd", "batchingSavingsUsd", "timingSavingsUsd"] {
                #expect(stats.string(field) != nil, "\(field)")
            }
            #expect(try await client.call(.get, "/api/admin/gas-stats?days=0", key: adminKey).string("field") == "days")
        }
        #expect(try await store.reconcile().ok)
        try await store.close()
    }
}
