import CreditsChain
import CreditsCore
import CreditsStore
import CreditsTestSupport
import Foundation
import LotusTestSupport
import Testing

/// `credits serve --chain lotus` as an operator runs it, against the fake Lotus node.
@Suite(.serialized) struct LotusServeTests {
    static let token = "eyJhbGciOiJIUzI1NiJ9.serve-lotus-token.c2VjcmV0"

    /// A chain on real time with short epochs, so that a real server process can use it.
    func fake() -> FakeLotus {
        var config = SimulatedChain.Config()
        config.epochMs = 300
        let start = WallClock.system.nowMs()
        config.genesisMs = start
        return FakeLotus(chain: SimulatedChain(config: config, clock: .system), token: Self.token)
    }

    func lotusArguments(_ url: String) -> [String] {
        ["--chain", "lotus", "--lotus-url", url, "--lotus-from", "f1sender", "--lotus-to", "f01234", "--lotus-confidence", "1",
         "--worker-tick-ms", "200", "--lotus-max-fee", "1000000000000000000"]
    }

    /// An upload queued over HTTP is batched, pushed through Lotus, confirmed and captured; the
    /// token appears nowhere in the server's output. At start the batch policy's model mode (the
    /// default) asked the node for its recent base fees.
    @Test func anUploadIsConfirmedThroughLotus() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let fake = fake()
        try await fake.serve { url in
            let db = dir.path + "/ledger.sqlite"
            let server = try ServerProcess(database: db, logFile: dir.path + "/serve.log",
                                           environment: ["LOTUS_TOKEN": Self.token], arguments: lotusArguments(url))
            defer { server.stop() }
            try await server.waitUntilReady()
            _ = try await HTTP.call(port: server.port, .post, "/api/admin/adjustments", key: adminKey,
                body: #"{"userId":"lotus_u","credits":100,"adjustmentId":"fund-lotus","reason":"test"}"#)
            let queued = try await HTTP.call(port: server.port, .post, "/api/uploads",
                body: #"{"uploadId":"lotus_f1","userId":"lotus_u","fileType":"audio","sizeBytes":1000,"priority":"high"}"#)
            #expect(queued.status == 202)
            _ = try await HTTP.call(port: server.port, .post, "/api/admin/process-batch", key: adminKey, body: "{}")
            var status = ""
            for _ in 0..<150 {
                status = try await HTTP.call(port: server.port, .get, "/api/uploads/lotus_f1").string("status") ?? ""
                if status == "confirmed" { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(status == "confirmed")
            let balance = try await HTTP.call(port: server.port, .get, "/api/credits/balance?userId=lotus_u")
            #expect(balance.int("balance") == 85 && balance.int("totalSpent") == 15)
            #expect(fake.calls.contains("Filecoin.MpoolPush") && fake.calls.contains("Filecoin.StateReplay"))
            // The history loads while the steps run, one call per height: on a loaded machine it
            // may end after the upload is confirmed (a minute at most before the test gives up).
            for _ in 0..<300 {
                let log = (try? String(contentsOfFile: dir.path + "/serve.log", encoding: .utf8)) ?? ""
                if log.contains("base-fee history loaded") { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            await server.stopAndWait()
            let log = (try? String(contentsOfFile: dir.path + "/serve.log", encoding: .utf8)) ?? ""
            #expect(!log.isEmpty && !log.contains(Self.token) && !log.contains("serve-lotus-token"))
            #expect(fake.calls.contains("Filecoin.ChainGetTipSetAfterHeight") && log.contains("base-fee history loaded"))
            let reconcile = try await runCredits(["reconcile", "--database", db])
            #expect(reconcile.status == 0, "\(reconcile.output)")
        }
    }

    /// A clear start-up error when the node cannot be reached or refuses the token; neither
    /// prints the token.
    @Test func startUpFailsClearlyWhenTheNodeIsUnreachableOrRefusesTheToken() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let fake = fake()
        try await fake.serve { url in
            let refused = try await runCredits(["serve", "--port", "0", "--database", dir.path + "/a.sqlite"] + lotusArguments(url),
                                         environment: ["LOTUS_TOKEN": "not-the-right-token-42"])
            #expect(refused.status != 0)
            #expect(refused.output.contains("refused"), "\(refused.output)")
            #expect(!refused.output.contains("not-the-right-token-42"))
        }
        let port = try freePort()  // nothing listens there
        let unreachable = try await runCredits(["serve", "--port", "0", "--database", dir.path + "/b.sqlite"] + lotusArguments("http://127.0.0.1:\(port)"),
                                         environment: ["LOTUS_TOKEN": Self.token])
        #expect(unreachable.status != 0)
        #expect(unreachable.output.contains("cannot reach the Lotus node"), "\(unreachable.output)")
        #expect(!unreachable.output.contains(Self.token))
        let noToken = try await runCredits(["serve", "--port", "0", "--database", dir.path + "/c.sqlite"] + lotusArguments("http://127.0.0.1:\(port)"),
                                     environment: ["LOTUS_TOKEN": ""])
        #expect(noToken.status != 0 && noToken.output.contains("LOTUS_TOKEN"))
    }
}
