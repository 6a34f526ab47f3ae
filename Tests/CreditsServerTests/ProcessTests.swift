import CreditsTestSupport
import Foundation
import GRDB
import HummingbirdTesting
import Synchronization
import Testing

/// Crash safety and the CLI, against the real `credits` executable.
@Suite(.serialized) struct ProcessTests {
    /// Proves: an operation acknowledged with 201 survives SIGKILL, none is applied twice, and the
    /// ledger reconciles. How: 16 clients send spends (each with its own connection) until the
    /// server is killed mid-load; after a restart every acknowledged spend replays with the same
    /// transaction id, the journal holds each upload at most once, and the balances add up.
    @Test func sigkillDuringSpendLoadLosesNoAcknowledgedSpend() async throws {
        let dir = NSTemporaryDirectory() + "credits-crash-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = dir + "/ledger.sqlite"
        let users = (0..<8).map { "crash_u\($0)" }
        let funding: Int64 = 1_000_000

        let first = try ServerProcess(database: db, logFile: dir + "/serve1.log")
        defer { first.stop() }
        try await first.waitUntilReady()
        for user in users {
            let r = try await HTTP.call(port: first.port, .post, "/api/admin/adjustments", key: adminKey,
                body: #"{"userId":"\#(user)","credits":\#(funding),"adjustmentId":"fund-\#(user)","reason":"crash test"}"#)
            #expect(r.status == 201)
        }

        let acknowledged = try await spendLoad(ports: [first.port], users: users, clients: 16, ackedBeforeKill: 1_500) {
            first.kill9()
        }
        print("crash test: \(acknowledged.count) spends acknowledged before SIGKILL")
        #expect(acknowledged.count >= 100, "too few spends were acknowledged before the kill to prove anything")

        let second = try ServerProcess(database: db, logFile: dir + "/serve2.log")
        defer { second.stop() }
        try await second.waitUntilReady()
        try await expectAcknowledgedSpendsReplay(acknowledged, port: second.port)
        await second.stopAndWait()

        // The journal holds each upload at most once, and balances are funding minus the spends in it.
        let queue = try DatabaseQueue(path: db)
        let (duplicates, spentByUser, balances) = try await queue.read { db in
            (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM (SELECT reference FROM credit_transactions WHERE kind = 'spend' GROUP BY reference HAVING COUNT(*) > 1)") ?? -1,
             try Dictionary(uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT user_id, SUM(amount) FROM credit_transactions WHERE kind = 'spend' GROUP BY user_id").map { ($0[0] as String, $0[1] as Int64) }),
             try Dictionary(uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT user_id, balance FROM user_credits").map { ($0[0] as String, $0[1] as Int64) }))
        }
        try queue.close()
        #expect(duplicates == 0)
        for user in users {
            #expect(balances[user] == funding - (spentByUser[user] ?? 0))
        }
        let ackedByUser = Dictionary(grouping: acknowledged, by: \.user).mapValues { $0.reduce(0) { $0 + $1.credits } }
        for user in users {
            #expect((spentByUser[user] ?? 0) >= (ackedByUser[user] ?? 0))
        }
        let reconcile = try await runCredits(["reconcile", "--database", db])
        #expect(reconcile.status == 0, "\(reconcile.output)")
    }

    /// `credits reconcile` exits 0 on a consistent database and 1, naming the account, after a
    /// balance row is edited by hand.
    @Test func reconcileCommandCatchesAHandEditedBalance() async throws {
        let dir = NSTemporaryDirectory() + "credits-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = dir + "/ledger.sqlite"
        let server = try ServerProcess(database: db, logFile: dir + "/serve.log")
        defer { server.stop() }
        try await server.waitUntilReady()
        let bought = try await HTTP.call(port: server.port, .post, "/api/credits/purchase",
            body: #"{"userId":"carol","package":"creator","paymentMethod":"stripe","paymentId":"pi_carol"}"#)
        #expect(bought.status == 201)
        await server.stopAndWait()

        let clean = try await runCredits(["reconcile", "--database", db])
        #expect(clean.status == 0, "\(clean.output)")
        #expect(clean.output.contains("ok"))

        let queue = try DatabaseQueue(path: db)
        try await queue.write { try $0.execute(sql: "UPDATE user_credits SET balance = 9999 WHERE user_id = 'carol'") }
        try queue.close()
        let broken = try await runCredits(["reconcile", "--database", db])
        #expect(broken.status == 1)
        #expect(broken.output.contains("user:carol"))
    }

    @Test func cliCommandsCheckTheirInputAndHaveHelp() async throws {
        let estimate = try await runCredits(["estimate", "--file-type", "audio", "--file-count", "3",
                                       "--feature", "premium_encryption", "--feature", "quality_variants"])
        #expect(estimate.status == 0)
        #expect(estimate.output.contains("\"credits\" : 60"))
        let bad = try await runCredits(["estimate", "--file-type", "hologram"])
        #expect(bad.status != 0)
        #expect(bad.output.contains("fileType"))
        // A bad user id is named, and no database is created for it.
        let dir = try TempDir()
        defer { dir.remove() }
        let badUser = try await runCredits(["balance", "--user-id", "a b", "--database", dir.path + "/x.sqlite"])
        #expect(badUser.status != 0 && badUser.output.contains("--user-id"), "\(badUser.output)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/x.sqlite"))
        let badBench = try await runCredits(["bench", "--estimates=-1", "--database", dir.path + "/b.sqlite"])
        #expect(badBench.status != 0 && badBench.output.contains("--estimates"), "\(badBench.output)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/b.sqlite"))
        // The tools that read a ledger refuse a path without one, instead of creating an empty
        // ledger there and reporting it clean; migrate creates it.
        let typo = dir.path + "/typo.sqlite"
        for tool in [["reconcile"], ["expire"], ["balance", "--user-id", "bob"]] {
            let refused = try await runCredits(tool + ["--database", typo])
            #expect(refused.status == 1 && refused.output.contains("no ledger at \(typo): the file does not exist"),
                    "\(tool): \(refused.output)")
            #expect(!FileManager.default.fileExists(atPath: typo))
        }
        // A path SQLite cannot open is named, with its missing folder.
        let nowhere = dir.path + "/no-such-folder/ledger.sqlite"
        let unopened = try await runCredits(["migrate", "--database", nowhere])
        #expect(unopened.status == 1 && unopened.output.contains("cannot open the SQLite database at \(nowhere)")
                    && unopened.output.contains("the folder \(dir.path)/no-such-folder does not exist"), "\(unopened.output)")
        #expect(try await runCredits(["migrate", "--database", typo]).status == 0)
        let clean = try await runCredits(["reconcile", "--database", typo])
        #expect(clean.status == 0 && clean.output.contains("ok"), "\(clean.output)")
        for sub in ["serve", "migrate", "estimate", "balance", "reconcile", "bench"] {
            let help = try await runCredits([sub, "--help"])
            #expect(help.status == 0, "\(sub) --help")
            #expect(help.output.contains("USAGE"))
        }
    }

    /// `serve` takes the batch policy's knobs as `simulate` does; a bad one (or a bad pair), or a
    /// port past 65535, stops it before it opens the database, naming the setting.
    @Test func servePolicyKnobsAreCheckedBeforeStart() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let help = try await runCredits(["serve", "--help"])
        #expect(help.output.contains("--hold-decay-percent") && help.output.contains("--spike-jump-percent"))
        #expect(help.output.contains("--batch-policy") && help.output.contains("--model-alone-permille"))
        #expect(help.output.contains("--quiet-minutes"))
        for (knobs, field) in [(["--hold-decay-ticks", "500"], "holdDecayTicks"),  // beyond the 120 ticks of history
                               (["--history-epochs", "20", "--hold-decay-ticks", "30"], "holdDecayTicks"),
                               (["--hold-fall-percent", "100"], "holdFallPercent"),
                               (["--batch-policy", "rule"], "--batch-policy"),
                               (["--model-open-permille", "200000"], "model.openPermille"),
                               (["--model-chance-max-permille", "0"], "model.messageChanceMaxPermille"),
                               (["--model-history-epochs", "30000"], "--model-history-epochs"),
                               (["--quiet-minutes=-1"], "--quiet-minutes"),
                               (["--quiet-minutes", "43201"], "--quiet-minutes"),
                               (["--history-epochs", "100001"], "historyLengthMax"),
                               (["--history-epochs", "9223372036854775807"], "historyLengthMax"),
                               (["--cheap-batch-min=-1"], "cheapBatchMin"),
                               (["--queue-price-batch-min=-1"], "queuePriceBatchMin"),
                               (["--rise-percent", "9223372036854775807"], "risePercent"),
                               (["--rise-percent", "5", "--rise-window", "121"], "riseWindowTicks"),
                               (["--port", "65536"], "--port"),
                               (["--idle-timeout", "0"], "--idle-timeout"),
                               (["--port=-1"], "--port")] {
            let refused = try await runCredits(["serve", "--database", dir.path + "/x.sqlite", "--port", "0"] + knobs)
            #expect(refused.status != 0)
            #expect(refused.output.contains(field), "\(knobs): \(refused.output)")
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/x.sqlite"))
        }
    }

    /// Proves: `serve` batches with the knobs it is given, not only checks them. Three
    /// medium-priority uploads have 15 minutes before their deadline, and by default cheap gas
    /// alone sends a batch only from 16 uploads (`cheapBatchMin`): on a server with the defaults
    /// they stay queued. With `--cheap-batch-min 3 --cheap-percentile 100` (every base fee counts
    /// as cheap) and 3 base fees of history, the same three go within a few ticks.
    @Test func serveBatchesWithTheKnobsItIsGiven() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let quick = ["--chain-epoch-ms", "200"]
        let tuned = try ServerProcess(database: dir.path + "/tuned.sqlite", logFile: dir.path + "/tuned.log",
            arguments: quick + ["--cheap-batch-min", "3", "--cheap-percentile", "100", "--history-epochs", "3", "--hold-decay-ticks", "3"])
        defer { tuned.stop() }
        let plain = try ServerProcess(database: dir.path + "/plain.sqlite", logFile: dir.path + "/plain.log", arguments: quick)
        defer { plain.stop() }
        for server in [tuned, plain] {
            try await server.waitUntilReady()
            let funded = try await HTTP.call(port: server.port, .post, "/api/admin/adjustments", key: adminKey,
                body: #"{"userId":"knob_u","credits":100,"adjustmentId":"fund-knob","reason":"test","category":"paid"}"#)
            #expect(funded.status == 201, "\(funded.text)")
            for i in 0..<3 {
                let queued = try await HTTP.call(port: server.port, .post, "/api/uploads",
                    body: #"{"uploadId":"knob_\#(i)","userId":"knob_u","fileType":"audio","sizeBytes":1000,"priority":"medium"}"#)
                #expect(queued.status == 202, "\(queued.text)")
            }
        }
        func statuses(_ server: ServerProcess) async throws -> [String] {
            var out: [String] = []
            for i in 0..<3 { out.append(try await HTTP.call(port: server.port, .get, "/api/uploads/knob_\(i)").string("status") ?? "") }
            return out
        }
        var sent: [String] = []
        for _ in 0..<150 {
            sent = try await statuses(tuned)
            if sent.allSatisfy({ $0 == "confirmed" }) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(sent == ["confirmed", "confirmed", "confirmed"])
        let balance = try await HTTP.call(port: tuned.port, .get, "/api/credits/balance?userId=knob_u")
        #expect(balance.int("balance") == 55 && balance.int("reserved") == 0 && balance.int("totalSpent") == 45)
        // The server with the defaults has had as many ticks, and holds all three still.
        #expect(try await statuses(plain) == ["queued", "queued", "queued"])
    }

    /// A catalog file replaces the built-in prices; a bad one is refused at start-up naming the field.
    @Test func catalogFileIsValidatedAndUsed() async throws {
        let dir = NSTemporaryDirectory() + "credits-catalog-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = """
            {"packages": [{"id": "solo", "credits": 10, "bonusCredits": 0, "priceCents": 100}],
             "uploadTypes": [{"id": "audio", "credits": 20}],
             "features": [], "milestones": [],
             "batchDiscount": {"minFiles": 2, "percent": 50}}
            """
        try good.write(toFile: dir + "/good.json", atomically: true, encoding: .utf8)
        let priced = try await runCredits(["estimate", "--catalog", dir + "/good.json", "--file-type", "audio", "--file-count", "3"])
        #expect(priced.status == 0, "\(priced.output)")
        #expect(priced.output.contains("\"credits\" : 30"))

        let bad = good.replacingOccurrences(of: "\"priceCents\": 100", with: "\"priceCents\": -1")
        try bad.write(toFile: dir + "/bad.json", atomically: true, encoding: .utf8)
        let refused = try await runCredits(["serve", "--catalog", dir + "/bad.json", "--database", dir + "/x.sqlite", "--port", "0"])
        #expect(refused.status != 0)
        #expect(refused.output.contains("packages[0].priceCents"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/x.sqlite"))

        try #"{"packages": "#.write(toFile: dir + "/broken.json", atomically: true, encoding: .utf8)
        let broken = try await runCredits(["estimate", "--catalog", dir + "/broken.json", "--file-type", "audio"])
        #expect(broken.status != 0)
        #expect(broken.output.contains("broken.json"))
    }

    /// `/metrics` speaks Prometheus text with request and ledger figures; logs are JSON lines with
    /// a request id, and no key ever appears in them; a SIGTERM stops it with status 0, and its
    /// log says the gas manager drained and the process stopped.
    @Test func metricsAndJSONLogs() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let log = dir.path + "/serve.log"
        let server = try ServerProcess(database: dir.path + "/ledger.sqlite", logFile: log)
        defer { server.stop() }
        try await server.waitUntilReady()
        _ = try await HTTP.call(port: server.port, .post, "/api/credits/purchase",
            body: #"{"userId":"mia","package":"starter","paymentMethod":"stripe","paymentId":"pi_mia"}"#)
        _ = try await HTTP.call(port: server.port, .post, "/api/credits/spend",
            body: #"{"userId":"mia","credits":500,"fileUploadId":"m1"}"#)
        let metrics = try await HTTP.call(port: server.port, .get, "/metrics", key: nil)
        #expect(metrics.status == 200)
        #expect(metrics.text.contains(#"hb_requests{http_route="/api/credits/purchase",http_request_method="POST",http_response_status_code="201"} 1"#))
        #expect(metrics.text.contains("http_server_request_duration_bucket"))
        #expect(metrics.text.contains(#"credits_ledger_operations_total{kind="purchase",outcome="applied"} 1"#))
        #expect(metrics.text.contains(#"credits_ledger_operations_total{kind="spend",outcome="insufficient_credits"} 1"#))
        #expect(metrics.text.contains("credits_upload_queue_depth"))
        #expect(metrics.text.contains("credits_database_writes_owed 0"))
        await server.stopAndWait()
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(lines.count >= 3)
        var withRequestId = 0
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["level"] != nil && object?["message"] != nil)
            if object?["hb.request.id"] != nil { withRequestId += 1 }
        }
        #expect(withRequestId >= 3)
        let all = try String(contentsOfFile: log, encoding: .utf8)
        #expect(!all.contains(serviceKey) && !all.contains(adminKey))
        // A SIGTERM is a clean stop, and the log says so: the gas manager's drain, then the end.
        #expect(server.process.terminationStatus == 0)
        let messages = lines.compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["message"] as? String
        }
        let drain = messages.firstIndex { $0.hasPrefix("shutting down: the gas manager") }
        let stopped = messages.firstIndex(of: "gas manager stopped: nothing in flight")
        #expect(drain != nil && stopped != nil && drain! < stopped!, "\(messages.suffix(4))")
        #expect(messages.last == "credits stopped", "\(messages.suffix(4))")
    }

    /// A connection that sends nothing is closed after `--idle-timeout`, so clients that open
    /// connections and sit on them cannot hold the server's file descriptors for good (seen by
    /// hand before: with a soft limit of 256 open files, 400 such connections left /healthz
    /// unanswered for as long as they stayed). And `serve` raises its soft limit on open files to
    /// the hard one, and logs both.
    @Test func idleConnectionsAreClosedAndTheOpenFilesLimitIsRaised() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let log = dir.path + "/serve.log"
        let server = try ServerProcess(
            database: dir.path + "/ledger.sqlite", logFile: log, arguments: ["--idle-timeout", "1"], softOpenFiles: 256)
        defer { server.stop() }
        try await server.waitUntilReady()
        let silent = try SilentConnection(port: server.port)
        // Bounded: a server that never closes it fails here, 30 s on.
        #expect(await waitUntil(polls: 300, everyMs: 100) { silent.closedByPeer }, "an idle connection stayed open")
        #expect(try await HTTP.call(port: server.port, .get, "/healthz", key: nil).status == 200)
        await server.stopAndWait()

        let limits = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]).flatMap { $0["message"] as? String == "open files limit" ? $0 : nil }
        }
        let soft = (limits.first?["soft"] as? String).flatMap(Int.init), hard = (limits.first?["hard"] as? String).flatMap(Int.init)
        #expect(soft != nil && soft == hard, "\(limits)")
    }
}
