import CreditsChain
import CreditsCore
import CreditsStore
import CreditsTestSupport
import CreditsWorker
import Logging
import Synchronization
import Testing

/// The gas manager against the simulated chain, on virtual time.
@Suite struct GasManagerTests {
    struct Setup {
        var store: SQLiteStore
        var chain: SimulatedChain
        var manager: FilecoinGasManager
        var clock: VirtualClock
        var dir: TempDir

        /// Advances one epoch and runs one worker step, `n` times.
        func run(epochs n: Int) async {
            for _ in 0..<n {
                clock.advance(ms: 30_000)
                await manager.step()
            }
        }
    }

    func setup(chain chainConfig: SimulatedChain.Config = .init(), config: FilecoinGasManager.Config = .init()) throws -> Setup {
        try setup(chain: chainConfig, config: config) { $0 }.0
    }

    /// A set-up whose manager talks to `wrap(chain)`, a chain with a fault of its own; `chain`
    /// stays the simulated chain underneath.
    func setup<C: ChainClient>(chain chainConfig: SimulatedChain.Config = .init(), config: FilecoinGasManager.Config = .init(),
                               wrap: (SimulatedChain) -> C) throws -> (Setup, C) {
        let dir = try TempDir()
        let clock = VirtualClock(startMs: 1_000_000)
        let wall = clock.wallClock
        var chainConfig = chainConfig
        chainConfig.genesisMs = 1_000_000
        let store = try SQLiteStore(path: dir.path + "/ledger.sqlite", clock: wall)
        let chain = SimulatedChain(config: chainConfig, clock: wall)
        let wrapped = wrap(chain)
        let manager = FilecoinGasManager(store: store, chain: wrapped, clock: wall, config: config)
        return (Setup(store: store, chain: chain, manager: manager, clock: clock, dir: dir), wrapped)
    }

    /// A set-up whose manager reaches the store through a `FlakyStore` (disarmed until armed).
    func setup(chain chainConfig: SimulatedChain.Config = .init(), config: FilecoinGasManager.Config = .init(),
               storeFailurePPM: Int64, seed: UInt64) throws -> (Setup, FlakyStore) {
        var s = try setup(chain: chainConfig, config: config)
        let flaky = FlakyStore(s.store, failureRatePPM: storeFailurePPM, seed: seed)
        s.manager = FilecoinGasManager(store: flaky, chain: s.chain, clock: s.clock.wallClock, config: config)
        return (s, flaky)
    }

    /// Another manager on the same store and chain: a restarted process (its own tag) or a peer.
    func instance(_ s: Setup, tag: String, takeoverAfterMs: Int64? = nil, logger: Logger? = nil) -> FilecoinGasManager {
        var config = s.manager.config
        config.instanceTag = tag
        if let takeoverAfterMs { config.takeoverAfterMs = takeoverAfterMs }
        return FilecoinGasManager(store: s.store, chain: s.chain, clock: s.clock.wallClock, config: config, logger: logger)
    }

    /// Queues one-file audio uploads for u1 through the set-up's manager.
    func queue(_ s: Setup, _ uploadIds: [String], priority: UploadPriority = .medium) async throws {
        for id in uploadIds {
            _ = try await s.manager.queueUpload(UploadRequest(uploadId: id, userId: "u1", fileType: "audio", sizeBytes: 1, priority: priority))
        }
    }

    /// Queues one upload for u1 and sends it at once.
    func sendOne(_ s: Setup, _ uploadId: String) async throws {
        try await queue(s, [uploadId])
        _ = try await s.manager.processNow()
    }

    /// Queues `uploadId` for u1, sends it, and runs until it is refunded (every attempt failed).
    func sendUntilRefunded(_ s: Setup, _ uploadId: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await sendOne(s, uploadId)
        var epochs = 0
        while try await s.store.upload(uploadId: uploadId)?.status != .refunded, epochs < 2_000 {
            await s.run(epochs: 1)
            epochs += 1
        }
        #expect(try await s.store.upload(uploadId: uploadId)?.status == .refunded, sourceLocation: sourceLocation)
    }

    /// Queues `uploadId` for u1, sends it, and runs until its message is given up (no receipt
    /// after every replacement): the upload is `failed`, its next attempt waiting.
    func sendUntilGivenUp(_ s: Setup, _ uploadId: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await sendOne(s, uploadId)
        var epochs = 0
        while await s.manager.retriesWaiting == 0, epochs < 100 {
            await s.run(epochs: 1)
            epochs += 1
        }
        #expect(try await s.store.upload(uploadId: uploadId)?.status == .failed, sourceLocation: sourceLocation)
    }

    func fund(_ s: Setup, _ user: String, _ credits: Int64) async throws {
        _ = try await s.store.execute(.adjust(AdjustmentRequest(userId: user, credits: credits, adjustmentId: "fund-\(user)", reason: "test")),
                                      idempotencyKey: nil)
    }

    /// The issue's HTTP scenario, at the library level: queue 10, force a batch, see them
    /// confirmed, credits captured, stats updated.
    @Test func tenUploadsForcedIntoOneBatchAreConfirmedAndCaptured() async throws {
        let s = try setup()
        defer { s.dir.remove() }
        try await fund(s, "u1", 1_000)
        for i in 0..<10 {
            let r = try await s.manager.queueUpload(UploadRequest(uploadId: "f\(i)", userId: "u1", fileType: "audio", sizeBytes: 1_000, priority: .low))
            guard case .queued = r.outcome else { Issue.record("\(r)"); return }
        }
        #expect(try await s.store.balance(userId: "u1").reserved == 150)
        let batches = try await s.manager.processNow()
        #expect(batches.count == 1)
        #expect(try await s.store.upload(uploadId: "f0")?.status == .submitted)
        await s.run(epochs: 2)
        for i in 0..<10 {
            let u = try #require(try await s.store.upload(uploadId: "f\(i)"))
            #expect(u.status == .confirmed && u.creditsCharged == 15 && u.batchId == batches[0])
        }
        let b = try await s.store.balance(userId: "u1")
        #expect((b.balance, b.reserved, b.totalSpent) == (850, 0, 150))
        let stats = try await s.manager.getGasStats(days: 1)
        #expect(stats.batches == 1 && stats.uploads == 10 && stats.averageBatchSizeHundredths == 1_000)
        // Savings measured from the receipt agree with the model f(1 − 1/K) at K = 10.
        let model = BatchGasModel.addPieces.savingsPPM(items: 10)
        #expect(abs(stats.batchingSavingsPPM - model) < 10_000, "measured \(stats.batchingSavingsPPM) ppm, model \(model) ppm")
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }

    /// With 30% of messages reverting (and some stuck, some RPC errors), every upload ends
    /// confirmed or refunded, refunds equal the holds released, and the ledger reconciles. Every
    /// message's row is settled (none left pending), and no upload is stored by two messages.
    /// Run again with the database failing 10% and 30% of the worker's calls (`FlakyStore`: half
    /// of the failed writes had committed and lost their answer): the same must hold. (Before the
    /// manager kept failed writes, these runs ended with uploads stuck queued, batched or failed,
    /// holds never released, rows left pending and uploads confirmed with no message on record.)
    @Test(arguments: [(UInt64(7), Int64(0)), (8, 0), (7, 100_000), (8, 300_000)])
    func withThirtyPercentFailuresEveryUploadEndsConfirmedOrRefunded(seed: UInt64, storeFailurePPM: Int64) async throws {
        var chain = SimulatedChain.Config()
        chain.seed = seed
        chain.revertRatePPM = 300_000
        chain.stuckRatePPM = 50_000
        chain.rpcErrorRatePPM = 50_000
        var config = FilecoinGasManager.Config()
        config.retry.attemptsMax = 3
        config.retry.delayBaseMs = 30_000
        config.retry.delayMaxMs = 120_000
        let (s, flaky) = try setup(chain: chain, config: config, storeFailurePPM: storeFailurePPM, seed: seed)
        defer { s.dir.remove() }
        let users = (0..<5).map { "user_\($0)" }
        for u in users { try await fund(s, u, 100_000) }
        var queued: [String: Int64] = [:]
        for i in 0..<120 {
            let user = users[i % users.count]
            let type = ["audio", "video", "album"][i % 3]
            let priority = UploadPriority.allCases[i % 3]
            flaky.armed = false  // the upload requests themselves succeed; the worker's calls may fail
            let r = try await s.manager.queueUpload(UploadRequest(uploadId: "up_\(i)", userId: user, fileType: type, sizeBytes: 10, priority: priority))
            flaky.armed = true
            if case .queued(let receipt) = r.outcome { queued["up_\(i)"] = receipt.creditsReserved }
            if i % 4 == 0 { await s.run(epochs: 1) }
        }
        await s.run(epochs: 1_200)  // 10 virtual hours
        flaky.armed = false
        let label = "seed \(seed), database failing \(storeFailurePPM) ppm"
        var captured: Int64 = 0
        var refunded: Int64 = 0
        for (id, credits) in queued {
            let u = try #require(try await s.store.upload(uploadId: id))
            switch u.status {
            case .confirmed: captured += credits
            case .refunded: refunded += credits
            default: Issue.record("\(label): \(id) ended \(u.status)")
            }
        }
        var spent: Int64 = 0
        var balance: Int64 = 0
        for u in users {
            let b = try await s.store.balance(userId: u)
            #expect(b.reserved == 0, "\(label)")
            spent += b.totalSpent
            balance += b.balance
        }
        let counts = flaky.counts
        print("\(label): \(queued.count) uploads, captured \(captured) credits, refunded \(refunded) credits; "
              + "\(counts.failedBefore) calls failed, \(counts.failedAfter) writes committed and failed")
        if storeFailurePPM > 0 { #expect(counts.failedBefore > 0 && counts.failedAfter > 0) }
        #expect(spent == captured, "\(label)")
        #expect(balance == 5 * 100_000 - captured, "\(label)")  // refunds came back in full
        let report = try await s.store.reconcile()
        #expect(report.ok, "\(label): \(report.problems)")
        // Gas: every message's row is settled, and each confirmed upload rode one landed message.
        let rows = try await s.store.gasTransactions(sinceMs: 0, limit: 100_000)
        #expect(rows.filter { $0.status == .pending }.map(\.id) == [], "\(label): rows left pending")
        var landedIn: [String: Int] = [:]
        for row in rows where row.status == .confirmed {
            for id in row.uploadIds { landedIn[id, default: 0] += 1 }
        }
        #expect(landedIn.filter { $0.value > 1 }.keys.sorted() == [], "\(label): uploads stored by two messages")
        for (id, _) in queued where try await s.store.upload(uploadId: id)?.status == .confirmed {
            #expect(landedIn[id] == 1, "\(label): \(id) confirmed without a landed message on record")
        }
        let stats = try await s.manager.getGasStats(days: 1)
        #expect(stats.successRatePPM < 1_000_000)
        try await s.store.close()
    }

    /// The database failing every call: `process-batch` says UNAVAILABLE and sends nothing, tick
    /// after tick; once the database answers, the same uploads go out in one message (the chain's
    /// first) and are captured.
    @Test func whileTheDatabaseFailsProcessBatchSendsNothingAndSaysSo() async throws {
        let (s, flaky) = try setup(storeFailurePPM: 1_000_000, seed: 3)
        defer { s.dir.remove() }
        try await fund(s, "u1", 1_000)
        try await queue(s, (0..<5).map { "f\($0)" }, priority: .low)
        flaky.armed = true
        for _ in 0..<3 {
            do {
                _ = try await s.manager.processNow()
                Issue.record("process-batch answered while the database failed every call")
            } catch let error as CreditsError {
                #expect(error.code == .unavailable)
            }
            await s.run(epochs: 1)
        }
        flaky.armed = false
        #expect(flaky.counts.failedBefore + flaky.counts.failedAfter > 0)
        #expect(try await s.store.gasTransactions(sinceMs: 0, limit: 10).isEmpty)
        let batches = try await s.manager.processNow()
        #expect(batches.count == 1)
        await s.run(epochs: 2)
        for i in 0..<5 { #expect(try await s.store.upload(uploadId: "f\(i)")?.status == .confirmed) }
        let rows = try await s.store.gasTransactions(sinceMs: 0, limit: 10)
        #expect(rows.map(\.status) == [.confirmed] && rows.first?.uploadIds.count == 5)
        #expect(rows.first.flatMap { s.chain.nonce(of: $0.messageCid) } == 0)
        let b = try await s.store.balance(userId: "u1")
        #expect((b.reserved, b.totalSpent) == (0, 75))
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }

    /// `process-batch` arriving while a step is writing a receipt down (the actor is reentrant):
    /// it waits for that write and sends, rather than answering UNAVAILABLE on a healthy database.
    @Test func processBatchDuringAStepsWritesWaitsForThem() async throws {
        let (s, gated) = try setup(storeFailurePPM: 0, seed: 1)
        defer { s.dir.remove() }
        try await fund(s, "u1", 1_000)
        try await sendOne(s, "a")
        try await queue(s, ["b", "c"], priority: .low)
        gated.closeGate()
        s.clock.advance(ms: 30_000)
        let manager = s.manager
        let step = Task { await manager.step() }  // reads a's receipt, then saves its row: held
        #expect(await waitUntil { gated.heldAtGate > 0 })
        let processing = Task { try await manager.processNow() }
        await waitUntil { await manager.callsWaitingToWrite > 0 }  // it reaches the write in progress
        #expect(await manager.callsWaitingToWrite == 1)
        gated.openGate()
        await step.value
        let batches = try await processing.value
        #expect(batches.count == 1)
        await s.run(epochs: 2)
        for id in ["a", "b", "c"] { #expect(try await s.store.upload(uploadId: id)?.status == .confirmed) }
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }

    /// An upload given back after a failed claim keeps the base fee it was queued at, the
    /// reference for timing savings, rather than taking the base fee at which it is picked up again.
    @Test func anUploadGivenBackKeepsItsTimingReference() async throws {
        let (s, flaky) = try setup(storeFailurePPM: 1_000_000, seed: 4)
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        try await queue(s, ["g1"], priority: .low)
        await s.run(epochs: 1)
        let queuedFee = try await s.chain.head().baseFee  // the fee "at once": set at this tick
        try #require(try await s.store.upload(uploadId: "g1")?.status == .queued)
        flaky.armed = true
        await #expect(throws: CreditsError.self) { _ = try await s.manager.processNow() }  // the claim fails: given back
        await s.run(epochs: 30)
        flaky.armed = false
        await s.run(epochs: 1)  // the owed writes go; g1 is picked up again
        #expect(try await s.manager.processNow().count == 1)
        let row = try #require(try await s.store.gasTransactions(sinceMs: 0, limit: 10).first)
        #expect(row.baseFee != queuedFee)
        let atOnce = MessageFee.compute(baseFee: queuedFee, feeCap: MessageFee.defaultFeeCap(baseFee: queuedFee, premium: row.premium),
                                        premium: row.premium, gasLimit: row.gasLimit, gasUsed: row.gasUsed).total
        #expect(row.immediateCost == atOnce)
        try await s.store.close()
    }

    /// A process stopped while it owes writes (the receipt read, the captures not written) is the
    /// crash case. The restart finds the uploads submitted and the row pending (seed 1: its save
    /// failed before the database) or confirmed (seed 3: the save committed, its answer lost); it
    /// waits for the message again or captures at once, each upload once.
    @Test(arguments: [(UInt64(1), GasTransaction.Status.pending), (3, .confirmed)])
    func aProcessStoppedWhileOwingWritesIsRebuiltAtRestart(seed: UInt64, rowLeft: GasTransaction.Status) async throws {
        let (s, flaky) = try setup(storeFailurePPM: 1_000_000, seed: seed)
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        try await queue(s, ["o1", "o2"])
        #expect(try await s.manager.processNow().count == 1)
        flaky.armed = true
        await s.run(epochs: 1)  // the receipt is read; its writes fail and are owed
        flaky.armed = false
        #expect(await s.manager.messagesInFlight == 0)  // the receipt was read
        #expect(try await s.store.upload(uploadId: "o1")?.status == .submitted)
        #expect(try await s.store.gasTransactions(sinceMs: 0, limit: 10).map(\.status) == [rowLeft])
        #expect(try await s.store.balance(userId: "u1").reserved == 30)
        let restarted = instance(s, tag: s.manager.config.instanceTag)  // ...and the process stops here
        try await restarted.recover()
        for _ in 0..<3 {
            s.clock.advance(ms: 30_000)
            await restarted.step()
        }
        for id in ["o1", "o2"] { #expect(try await s.store.upload(uploadId: id)?.status == .confirmed) }
        #expect(s.chain.landedMessages().count == 1)
        #expect(try await s.store.gasTransactions(sinceMs: 0, limit: 10).map(\.status) == [.confirmed])
        let b = try await s.store.balance(userId: "u1")
        #expect((b.balance, b.reserved, b.totalSpent) == (70, 0, 30))
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }

    /// A restart whose takeover fails (the database, between opening the store and the takeover):
    /// `serve` stays up, and the restarted worker sends nothing and answers `process-batch` with
    /// UNAVAILABLE until the takeover succeeds at a later step. Then the last process's message is
    /// waited for, and its uploads are captured once.
    @Test func aTakeoverAtStartThatFailsIsTriedAgainAtEachStep() async throws {
        let (s, flaky) = try setup(storeFailurePPM: 1_000_000, seed: 5)
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        try await queue(s, ["t1", "t2"])
        #expect(try await s.manager.processNow().count == 1)  // ...and the process stops here
        let restarted = FilecoinGasManager(store: flaky, chain: s.chain, clock: s.clock.wallClock, config: s.manager.config)
        flaky.armed = true
        await #expect(throws: (any Error).self) { try await restarted.recover() }
        for _ in 0..<3 {
            s.clock.advance(ms: 30_000)
            await restarted.step()
            await #expect(throws: CreditsError.self) { _ = try await restarted.processNow() }
        }
        #expect(await restarted.messagesInFlight == 0)
        #expect(s.chain.landedMessages().count == 1)
        for id in ["t1", "t2"] { #expect(try await s.store.upload(uploadId: id)?.status == .submitted) }
        flaky.armed = false
        for _ in 0..<4 {
            s.clock.advance(ms: 30_000)
            await restarted.step()
        }
        for id in ["t1", "t2"] { #expect(try await s.store.upload(uploadId: id)?.status == .confirmed) }
        #expect(try await s.store.gasTransactions(sinceMs: 0, limit: 10).filter { $0.uploadIds.contains("t1") }.count == 1)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }

    @Test func aStuckMessageIsReplacedWithAHigherPremium() async throws {
        var chain = SimulatedChain.Config()
        chain.stuckRatePPM = 1_000_000  // every first push sticks...
        let s = try setup(chain: chain)
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        try await sendOne(s, "f")
        await s.run(epochs: 30)
        let txs = try await s.store.gasTransactions(sinceMs: 0, limit: 100)
        let replaced = txs.filter { $0.status == .replaced }
        #expect(!replaced.isEmpty)
        // Each replacement ("…-r1" after "…-r0") bids at least 1.25× the premium it replaces.
        let byId = Dictionary(uniqueKeysWithValues: txs.map { ($0.id, $0) })
        var checked = 0
        var checkedAtOnce = 0
        for tx in replaced {
            guard let r = tx.id.split(separator: "-").last, r.hasPrefix("r"), let n = Int(r.dropFirst()) else { continue }
            let nextId = tx.id.dropLast(r.count) + "r\(n + 1)"
            guard let next = byId[String(nextId)] else { continue }
            #expect(next.premium * 4 >= tx.premium * 5)
            // The single message it is compared with is priced as the replacement is sent (its
            // base fee and premium): one upload alone saves nothing by batching.
            #expect(next.individualCost == GasStats.batchedAtSameFee(next), "\(next.id)")
            // So is sending at once: at the base fee the upload could first have gone at (the
            // first attempt's, sent at once by process-batch), with the replacement's premium,
            // so that its raised tip does not count against timing.
            if next.attempt == 1, let first = byId[String(tx.id.dropLast(r.count)) + "r0"] {
                #expect(first.immediateCost == GasStats.batchedAtSameFee(first))
                let atOnce = MessageFee.compute(baseFee: first.baseFee,
                                                feeCap: MessageFee.defaultFeeCap(baseFee: first.baseFee, premium: next.premium),
                                                premium: next.premium, gasLimit: next.gasLimit, gasUsed: next.gasUsed).total
                #expect(next.immediateCost == atOnce, "\(next.id)")
                checkedAtOnce += 1
            }
            checked += 1
        }
        #expect(checked > 0 && checkedAtOnce > 0)
        // ...and so every message sticks: in the end the upload is refunded, never lost, and
        // every message of it, its later attempts included, took the first one's nonce.
        await s.run(epochs: 400)
        #expect(try await s.store.upload(uploadId: "f")?.status == .refunded)
        #expect(try await s.store.balance(userId: "u1").balance == 100)
        let all = try await s.store.gasTransactions(sinceMs: 0, limit: 100)
        #expect(Set(all.map(\.attempt)).count > 1)
        #expect(Set(all.map { s.chain.nonce(of: $0.messageCid) }) == [0])
        try await s.store.close()
    }
}

extension GasManagerTests {
    /// At shutdown the manager reads the receipts of messages in flight, so they settle now.
    @Test func drainingSettlesMessagesInFlight() async throws {
        let s = try setup()
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        try await sendOne(s, "d1")
        #expect(await s.manager.messagesInFlight == 1)
        s.clock.advance(ms: 30_000)
        #expect(await s.manager.drainInFlight() == 0)
        #expect(try await s.store.upload(uploadId: "d1")?.status == .confirmed)
        try await s.store.close()
    }
}

/// A chain whose node refuses every replacement (a Lotus node that lost the message, or one that
/// answers "not enough funds" to the higher premium).
struct RefusingReplacements: ChainWrapper {
    let inner: SimulatedChain
    func replace(_ cid: String, with message: ChainMessage) async throws -> String {
        throw ChainError("replacement refused", retryable: false)
    }
}

extension GasManagerTests {
    /// A restart while a message is in flight: the new process waits for that message, which
    /// lands once and settles its uploads, instead of sending them again; uploads claimed but
    /// never pushed go back to the queue.
    @Test func aRestartWaitsForItsMessagesInFlight() async throws {
        let s = try setup()
        defer { s.dir.remove() }
        let (store, clock) = (s.store, s.clock)
        try await fund(s, "u1", 100)
        let a = instance(s, tag: "aaaa")
        for i in 0..<3 { _ = try await a.queueUpload(UploadRequest(uploadId: "r\(i)", userId: "u1", fileType: "audio", sizeBytes: 1)) }
        _ = try await a.processNow()
        // A fourth upload was claimed into a batch when the process died, before its push.
        _ = try await a.queueUpload(UploadRequest(uploadId: "r3", userId: "u1", fileType: "audio", sizeBytes: 1))
        _ = try await store.transitionUploads(["r3"], from: [.queued], to: .batched, batchId: "batch_1_aaaa_99", reason: nil)

        let a2 = instance(s, tag: "aaaa")  // the restarted process
        try await a2.recover()
        #expect(await a2.messagesInFlight == 1)
        #expect(try await store.upload(uploadId: "r0")?.status == .submitted)
        #expect(try await store.upload(uploadId: "r3")?.status == .queued)
        _ = try await a2.processNow()
        for _ in 0..<10 {
            clock.advance(ms: 30_000)
            await a2.step()
        }
        var charged: Int64 = 0
        for i in 0..<4 {
            let u = try #require(try await store.upload(uploadId: "r\(i)"))
            #expect(u.status == .confirmed, "r\(i) is \(u.status)")
            charged += u.creditsCharged
        }
        #expect(try await store.balance(userId: "u1").balance == 100 - charged)
        let landed = s.chain.landedMessages()
        #expect(landed.count == 2 && landed.flatMap(\.message.uploadIds).sorted() == ["r0", "r1", "r2", "r3"])
        #expect(try await store.reconcile().ok)
        try await store.close()
    }
}

extension GasManagerTests {
    /// The process stopped after recording a message as confirmed and before capturing its
    /// uploads: the restarted one captures them, and sends nothing again.
    @Test func aRestartCapturesUploadsOfAMessageAlreadyConfirmed() async throws {
        let s = try setup()
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        try await sendOne(s, "cc")
        s.clock.advance(ms: 30_000)
        var tx = try #require(try await s.store.gasTransactions(sinceMs: 0, limit: 10).first)
        let receipt = try #require(try await s.chain.receipt(cid: tx.messageCid))
        tx.status = .confirmed
        tx.totalCost = receipt.cost.total
        try await s.store.saveGasTransaction(tx)  // ...and the process stops here
        let restarted = instance(s, tag: s.manager.config.instanceTag)
        try await restarted.recover()
        let u = try #require(try await s.store.upload(uploadId: "cc"))
        #expect(u.status == .confirmed)
        #expect(try await s.store.balance(userId: "u1").balance == 100 - u.creditsCharged)
        for _ in 0..<10 {
            s.clock.advance(ms: 30_000)
            await restarted.step()
        }
        #expect(s.chain.landedMessages().count == 1)
        #expect(try await s.store.gasTransactions(sinceMs: 0, limit: 10).count == 1)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }
}

/// A chain whose receipts stay hidden until `reveal` (a message that lands late) and whose node
/// refuses every replacement.
final class LateReceipts: ChainWrapper {
    let inner: SimulatedChain
    let reveal = Mutex(false)
    let pushes = Mutex(0)
    init(inner: SimulatedChain) { self.inner = inner }
    func push(_ message: ChainMessage, recordingFirst record: @Sendable (String) async throws -> Void) async throws -> String {
        pushes.withLock { $0 += 1 }
        return try await inner.push(message, recordingFirst: record)
    }
    func replace(_ cid: String, with message: ChainMessage) async throws -> String {
        throw ChainError("replacement refused", retryable: false)
    }
    func receipt(cid: String) async throws -> ChainReceipt? {
        reveal.withLock { $0 } ? try await inner.receipt(cid: cid) : nil
    }
}

extension GasManagerTests {
    /// A message given up after its replacements keeps its nonce and is still watched: when it
    /// lands after all, its upload settles on it (captured once) and is never sent again.
    @Test func aGivenUpMessageThatLandsLateIsSettledNotSentAgain() async throws {
        let (s, chain) = try setup { LateReceipts(inner: $0) }
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        try await sendUntilGivenUp(s, "late")
        chain.reveal.withLock { $0 = true }
        await s.run(epochs: 20)
        let u = try #require(try await s.store.upload(uploadId: "late"))
        #expect(u.status == .confirmed)
        #expect(try await s.store.balance(userId: "u1").balance == 100 - u.creditsCharged)
        #expect(chain.pushes.withLock { $0 } == 1)
        #expect(s.chain.landedMessages().count == 1)
        let retriesLeft = await s.manager.retriesWaiting
        #expect(retriesLeft == 0)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }

    /// A restart after a message was given up: the new process watches it again and the
    /// batch's later attempts replace it under its nonce, never a new one.
    @Test func aRestartKeepsAGivenUpMessagesNonce() async throws {
        var chainConfig = SimulatedChain.Config()
        chainConfig.stuckRatePPM = 1_000_000
        var config = FilecoinGasManager.Config()
        config.instanceTag = "aaaa"
        let s = try setup(chain: chainConfig, config: config)
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        try await sendUntilGivenUp(s, "gu")
        let restarted = instance(s, tag: "aaaa")
        try await restarted.recover()
        let watched = await restarted.messagesInFlight
        let waiting = await restarted.retriesWaiting
        #expect(watched == 1 && waiting == 1)
        for _ in 0..<400 {
            s.clock.advance(ms: 30_000)
            await restarted.step()
        }
        #expect(try await s.store.upload(uploadId: "gu")?.status == .refunded)
        #expect(try await s.store.balance(userId: "u1").balance == 100)
        let all = try await s.store.gasTransactions(sinceMs: 0, limit: 100)
        #expect(Set(all.map(\.attempt)).count > 1)
        #expect(Set(all.map { s.chain.nonce(of: $0.messageCid) }) == [0])
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }
}

/// A chain whose receipts stay hidden and whose node refuses every replacement until `landOnNextReplace` is
/// armed. Then the next replacement finds that the message it replaces has just landed: the
/// node refuses it (its nonce is taken), and the receipt shows from the sixth time it is asked
/// for on, as a node gives it only after its confidence epochs (Lotus's StateWaitMsg).
final class LandsOnReplace: ChainWrapper {
    let inner: SimulatedChain
    let pushes = Mutex(0)
    /// Times the receipt was asked for after the landing, while still hidden.
    private let hiddenFor = Mutex(5)
    private let landed = Mutex(false)
    private let armed = Mutex(false)
    private let hook = OneShot()

    init(_ inner: SimulatedChain) { self.inner = inner }

    /// `body` runs at that replacement, before the message lands.
    func landOnNextReplace(_ body: @escaping @Sendable () async -> Void) {
        hook.arm(body)
        armed.withLock { $0 = true }
    }

    func push(_ message: ChainMessage, recordingFirst record: @Sendable (String) async throws -> Void) async throws -> String {
        pushes.withLock { $0 += 1 }
        return try await inner.push(message, recordingFirst: record)
    }

    func replace(_ cid: String, with message: ChainMessage) async throws -> String {
        if armed.withLock({ a in defer { a = false }; return a }) {
            await hook.fire()
            landed.withLock { $0 = true }
            throw ChainError("nonce already used: \(cid) landed", retryable: false)
        }
        throw ChainError("replacement refused", retryable: false)
    }

    func receipt(cid: String) async throws -> ChainReceipt? {
        guard landed.withLock({ $0 }), hiddenFor.withLock({ h in defer { h -= 1 }; return h <= 0 }) else { return nil }
        return try await inner.receipt(cid: cid)
    }
}

extension GasManagerTests {
    /// A batch's next attempt claims its upload (into `submitted`) to replace the given-up
    /// message, and that message lands before the replacement reaches the node, which refuses
    /// it, and gives the receipt only some epochs later. The upload settles on the message that
    /// landed: captured once, never sent again, no retry left waiting. Also when that attempt
    /// was the batch's last (`attemptsMax` 2): the upload is held for `landingGraceMs` rather
    /// than refunded at once while it is stored.
    @Test(arguments: [FilecoinGasManager.Config().retry.attemptsMax, 2])
    func aGivenUpMessageThatLandsWhileItsReplacementIsClaimedIsSettledOnce(attemptsMax: Int) async throws {
        var config = FilecoinGasManager.Config()
        config.retry.attemptsMax = attemptsMax
        let (s, chain) = try setup(config: config) { LandsOnReplace($0) }
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        try await sendUntilGivenUp(s, "lr")
        let atReplace = Mutex<UploadRecord.Status?>(nil)
        let store = s.store
        chain.landOnNextReplace {
            let status = try? await store.upload(uploadId: "lr")?.status
            atReplace.withLock { $0 = status }
        }
        await s.run(epochs: 40)
        #expect(atReplace.withLock { $0 } == .submitted, "the next attempt had claimed the upload when it replaced")
        let u = try #require(try await s.store.upload(uploadId: "lr"))
        #expect(u.status == .confirmed, "\(u)")
        #expect(u.creditsCharged > 0)
        #expect(try await s.store.balance(userId: "u1").balance == 100 - u.creditsCharged)
        #expect(try await s.store.balance(userId: "u1").reserved == 0)
        #expect(chain.pushes.withLock { $0 } == 1)
        let txs = try await s.store.gasTransactions(sinceMs: 0, limit: 10)
        #expect(txs.filter { $0.status == .confirmed }.count == 1, "\(txs)")
        #expect(await s.manager.retriesWaiting == 0)
        #expect(await s.manager.messagesInFlight == 0)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }
}

/// Runs a hook once, just after the next replacement reached the chain, before the caller
/// hears of it: something that happens to the process right after it replaced a message.
final class AfterNextReplace: ChainWrapper {
    let inner: SimulatedChain
    private let hook = OneShot()

    init(_ inner: SimulatedChain) { self.inner = inner }

    func afterNextReplace(_ body: @escaping @Sendable () async -> Void) { hook.arm(body) }

    func replace(_ cid: String, with message: ChainMessage) async throws -> String {
        let newCid = try await inner.replace(cid, with: message)
        await hook.fire()
        return newCid
    }
}

extension GasManagerTests {
    /// A batch's next attempt replaces its given-up message under that message's nonce, and the
    /// process is killed just after, before it wrote anything about the replacement (its
    /// database went away at that moment). The restarted process must wait for that nonce, not
    /// queue the upload and send it under a new one: the replacement may land, and the upload
    /// would be stored twice. Until 2026-12-04 the upload was claimed as `batched` before the
    /// replacement, and a restart put a batched upload back in the queue.
    @Test func aProcessKilledJustAfterReplacingAGivenUpMessageKeepsItsNonce() async throws {
        var chainConfig = SimulatedChain.Config()
        chainConfig.stuckRatePPM = 1_000_000
        var config = FilecoinGasManager.Config()
        config.instanceTag = "aaaa"
        let (s, chain) = try setup(chain: chainConfig, config: config) { AfterNextReplace($0) }
        defer { s.dir.remove() }
        let flaky = FlakyStore(s.store, failureRatePPM: 0, seed: 1)
        let killed = FilecoinGasManager(store: flaky, chain: chain, clock: s.clock.wallClock, config: config)
        try await fund(s, "u1", 100)
        _ = try await killed.queueUpload(UploadRequest(uploadId: "kr", userId: "u1", fileType: "audio", sizeBytes: 1, priority: .high))
        #expect(try await killed.processNow().count == 1)
        var epochs = 0
        while await killed.retriesWaiting == 0, epochs < 100 {
            s.clock.advance(ms: 30_000)
            await killed.step()
            epochs += 1
        }
        #expect(try await s.store.upload(uploadId: "kr")?.status == .failed, "given up")
        chain.afterNextReplace { flaky.away = true }
        while !flaky.away, epochs < 200 {
            s.clock.advance(ms: 30_000)
            await killed.step()
            epochs += 1
        }
        #expect(flaky.away, "the next attempt replaced the given-up message")
        // Killed here: what it owes about the replacement is lost.

        let restarted = instance(s, tag: "aaaa")
        try await restarted.recover()
        #expect(await restarted.messagesInFlight == 1)
        for _ in 0..<400 {
            s.clock.advance(ms: 30_000)
            await restarted.step()
        }
        let u = try #require(try await s.store.upload(uploadId: "kr"))
        #expect(u.status == .refunded, "\(u)")
        #expect(try await s.store.balance(userId: "u1").balance == 100)
        let all = try await s.store.gasTransactions(sinceMs: 0, limit: 100)
        #expect(Set(all.compactMap { s.chain.nonce(of: $0.messageCid) }) == [0], "\(all.map(\.messageCid))")
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }
}

extension GasManagerTests {
    /// A batch refunded after its message was given up: the message may still land. A restarted
    /// process watches it again, and when it has landed its gas is on record, while the upload
    /// stays refunded and its hold released (nothing captured). That is said as a warning, once,
    /// naming the upload: stored on chain after its refund, not charged.
    @Test func aRestartWatchesTheGivenUpMessageOfARefundedBatch() async throws {
        var config = FilecoinGasManager.Config()
        config.instanceTag = "aaaa"
        config.retry.attemptsMax = 2
        let (s, _) = try setup(config: config) { LateReceipts(inner: $0) }
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        try await sendUntilRefunded(s, "rf")
        let landed = s.chain.landedMessages()  // it landed; the first process never saw its receipt
        #expect(landed.count == 1)
        let logs = CapturedLogs()
        let restarted = instance(s, tag: "aaaa", logger: logs.logger)  // on the chain itself: the receipt is visible
        try await restarted.recover()
        let watched = await restarted.messagesInFlight
        #expect(watched == 1)
        for _ in 0..<3 {
            s.clock.advance(ms: 30_000)
            await restarted.step()
        }
        let txs = try await s.store.gasTransactions(sinceMs: 0, limit: 10)
        #expect(txs.count == 1)
        #expect(txs.first?.status == .confirmed && txs.first?.messageCid == landed.first?.cid)
        #expect((txs.first?.totalCost ?? 0) > 0)
        let rf = try await s.store.upload(uploadId: "rf")
        #expect(rf?.status == .refunded)
        // Its row says so, naming the message: it was stored, and not charged.
        #expect(rf?.failureReason?.hasPrefix("stored on chain after its refund by message \(landed.first?.cid ?? "?"), not charged; refunded: ") == true,
                "\(rf?.failureReason ?? "nil")")
        #expect(try await s.store.balance(userId: "u1").balance == 100)
        #expect(logs.matching("warning", "stored on chain after its refund", "rf").count == 1, "\(logs.lines.withLock { $0 })")
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }
}

extension GasManagerTests {
    /// With no attempt to come (its batch was refunded), a given-up message is watched for a
    /// week from when it was sent, as a restart takes such messages back, and then let go: it is
    /// not waited for forever (on Lotus each watch holds a wait on the node). Until 2026-12-03 a
    /// live process watched it for good, a restarted one for a week.
    @Test func aGivenUpMessageOfARefundedBatchIsWatchedForAWeek() async throws {
        var config = FilecoinGasManager.Config()
        config.retry.attemptsMax = 2
        let (s, chain) = try setup(config: config) { LateReceipts(inner: $0) }
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        try await sendUntilRefunded(s, "wk")
        #expect(await s.manager.messagesInFlight == 1)
        #expect(await s.manager.retriesWaiting == 0)
        let row = try #require(try await s.store.gasTransactions(sinceMs: 0, limit: 10).first)

        s.clock.advance(ms: row.createdAtMs + config.givenUpWatchMs - 30_000 - s.clock.nowMs)
        await s.manager.step()
        #expect(await s.manager.messagesInFlight == 1, "watched until a week has passed")
        await s.run(epochs: 1)
        #expect(await s.manager.messagesInFlight == 0, "let go after a week")

        // Landing now changes nothing: the upload stays refunded, its row as it was.
        chain.reveal.withLock { $0 = true }
        await s.run(epochs: 3)
        #expect(try await s.store.gasTransactions(sinceMs: 0, limit: 10).map(\.status) == [.pending])
        #expect(try await s.store.upload(uploadId: "wk")?.status == .refunded)
        #expect(try await s.store.balance(userId: "u1").balance == 100)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }
}

extension GasManagerTests {
    /// A given-up message that a retry is still to replace stays watched past the week: let go,
    /// the retry would find nothing to replace and send a new message under another nonce, which
    /// could land beside the old one. Here the next attempt is due 8 to 16 days on, and the
    /// database fails its claim then, so the attempt waits again while the message is weeks old.
    @Test func aGivenUpMessageARetryIsToReplaceIsWatchedPastAWeek() async throws {
        var chainConfig = SimulatedChain.Config()
        chainConfig.stuckRatePPM = 1_000_000
        let s = try setup(chain: chainConfig)
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        let flaky = FlakyStore(s.store, failureRatePPM: 1_000_000, seed: 1)
        var config = s.manager.config
        config.retry.delayBaseMs = 16 * 86_400_000
        config.retry.delayMaxMs = 16 * 86_400_000
        let m = FilecoinGasManager(store: flaky, chain: s.chain, clock: s.clock.wallClock, config: config)
        _ = try await m.queueUpload(UploadRequest(uploadId: "x", userId: "u1", fileType: "audio", sizeBytes: 1, priority: .high))
        _ = try await m.processNow()
        var epochs = 0
        while await m.retriesWaiting == 0, epochs < 100 {
            s.clock.advance(ms: 30_000)
            await m.step()
            epochs += 1
        }
        #expect(await m.retriesWaiting == 1)
        #expect(await m.messagesInFlight == 1)

        s.clock.advance(ms: 16 * 86_400_000)
        flaky.armed = true
        await m.step()
        #expect(await m.retriesWaiting == 1)
        #expect(await m.messagesInFlight == 1, "still watched: the waiting attempt is to replace it")

        flaky.armed = false
        s.clock.advance(ms: 30_000)
        await m.step()
        let rows = try await s.store.gasTransactions(sinceMs: 0, limit: 100)
        #expect(rows.contains { $0.attempt == 2 }, "\(rows)")
        #expect(Set(rows.map { s.chain.nonce(of: $0.messageCid) }) == [0], "\(rows)")
        try await s.store.close()
    }
}

/// A process killed around a push: it hangs for good the moment the message is sent (`sends`),
/// or after recording it but before sending. Whatever it recorded before that moment stays.
/// `died` turns true when it hangs.
final class DyingPush: ChainWrapper {
    let inner: SimulatedChain
    let sends: Bool
    private let dead = Mutex(false)
    init(inner: SimulatedChain, sends: Bool) {
        self.inner = inner
        self.sends = sends
    }
    var died: Bool { dead.withLock { $0 } }
    func push(_ message: ChainMessage, recordingFirst record: @Sendable (String) async throws -> Void) async throws -> String {
        let sends = self.sends
        let inner = self.inner
        _ = try await inner.push(message) { cid in
            // Recording after the send would come too late: the process is dead by then.
            if try await inner.knows(cid: cid) { try await Task.sleep(for: .seconds(86_400)) }
            try await record(cid)
            if !sends {  // killed before sending
                self.dead.withLock { $0 = true }
                try await Task.sleep(for: .seconds(86_400))
            }
        }
        self.dead.withLock { $0 = true }  // killed after sending
        try await Task.sleep(for: .seconds(86_400))
        throw CancellationError()
    }
}

extension GasManagerTests {
    /// Starts `processNow` on a manager whose push never returns, and waits until the process
    /// dies: its message's row on record, the message sent or not as the chain's `sends` says.
    func pushAndDie(_ s: Setup, _ dying: DyingPush, _ uploadId: String) async throws {
        try await queue(s, [uploadId])
        Task { _ = try? await s.manager.processNow() }
        let died = await waitUntil(polls: 2_000, everyMs: 5) { dying.died }
        try #require(died, "the push never reached the point where the process dies")
        #expect(try await s.store.gasTransactions(sinceMs: 0, limit: 10).count == 1)
    }

    /// Killed after sending, before the push returned: the row was written before the message
    /// went out, so the restarted process waits for it. It lands once and is captured once;
    /// nothing is sent again (with the row written after sending, there was none: the upload
    /// was queued again and stored by two messages).
    @Test func aProcessKilledAfterSendingWaitsForItsMessage() async throws {
        var config = FilecoinGasManager.Config()
        config.instanceTag = "aaaa"
        let (s, dying) = try setup(config: config) { DyingPush(inner: $0, sends: true) }
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        try await pushAndDie(s, dying, "ks")  // the dead process stays hung; it never returns
        let restarted = instance(s, tag: "aaaa")
        try await restarted.recover()
        let watched = await restarted.messagesInFlight
        #expect(watched == 1)
        for _ in 0..<20 {
            s.clock.advance(ms: 30_000)
            await restarted.step()
        }
        let u = try #require(try await s.store.upload(uploadId: "ks"))
        #expect(u.status == .confirmed)
        #expect(s.chain.landedMessages().count == 1)
        #expect(try await s.store.balance(userId: "u1").balance == 100 - u.creditsCharged)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }

    /// Killed after writing the row, before sending: the restarted process learns the chain never
    /// got the message, closes the row and queues the upload again, which is then confirmed
    /// (waiting for a message that cannot land would end in a refund).
    @Test func aProcessKilledBeforeSendingQueuesTheUploadAgain() async throws {
        var config = FilecoinGasManager.Config()
        config.instanceTag = "aaaa"
        let (s, dying) = try setup(config: config) { DyingPush(inner: $0, sends: false) }
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        try await pushAndDie(s, dying, "kb")
        #expect(s.chain.landedMessages().isEmpty)
        let restarted = instance(s, tag: "aaaa")
        try await restarted.recover()
        let watched = await restarted.messagesInFlight
        #expect(watched == 0)
        #expect(try await s.store.upload(uploadId: "kb")?.status == .queued)
        for _ in 0..<60 {
            s.clock.advance(ms: 30_000)
            await restarted.step()
        }
        let u = try #require(try await s.store.upload(uploadId: "kb"))
        #expect(u.status == .confirmed)
        #expect(s.chain.landedMessages().count == 1)
        let txs = try await s.store.gasTransactions(sinceMs: 0, limit: 10)
        #expect(txs.map(\.status).sorted { $0.rawValue < $1.rawValue } == [.confirmed, .unsent])
        #expect(try await s.store.balance(userId: "u1").balance == 100 - u.creditsCharged)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }

    /// A process that restarts again and again (a crash loop) while every message reverts: each
    /// restart takes its failed upload back into the queue, where the schedule counts attempts
    /// from one again. The messages that carried it are counted in the database, and a life
    /// that takes it over has only the rest of `sendsPerUploadMax` (10) to send. Here each life
    /// sends it three times: 3, 6, 9, and the fourth life sends it once more and refunds it when
    /// that message reverts. Or (`.diesWithTheLastInFlight`) the fourth life dies with that 10th
    /// message in flight, and the fifth, taking the message over, refunds the upload when it
    /// reverts. Or (`.withCompany`) the fourth life sends it with two new uploads in one message:
    /// when that reverts, it is refunded, and the other two go on, each sent 10 times in all.
    enum LastLife: CaseIterable { case alone, diesWithTheLastInFlight, withCompany }

    @Test(arguments: LastLife.allCases)
    func anUploadSentTooOftenAcrossRestartsIsRefundedNotSentAgain(lastLife: LastLife) async throws {
        var chain = SimulatedChain.Config()
        chain.revertRatePPM = 1_000_000
        var config = FilecoinGasManager.Config()
        config.instanceTag = "aaaa"
        let sendsMax = config.retry.sendsPerUploadMax
        let s = try setup(chain: chain, config: config)
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        try await queue(s, ["loop"])
        var manager = s.manager
        var lives = 0
        while try await s.store.upload(uploadId: "loop")?.status != .refunded, lives < 10 {
            if lives > 0 {
                manager = instance(s, tag: "aaaa")  // the process restarts
                try await manager.recover()
            }
            lives += 1
            let sentBefore = try #require(try await s.store.upload(uploadId: "loop")).attempts
            if lastLife == .withCompany, sentBefore == sendsMax - 1 {
                for id in ["f1", "f2"] {
                    _ = try await manager.queueUpload(UploadRequest(uploadId: id, userId: "u1", fileType: "audio", sizeBytes: 1, priority: .medium))
                }
                #expect(try await manager.processNow().count == 1)
            }
            // Runs until its third message of this life reverted (or it is refunded); then the process dies.
            for _ in 0..<2_000 {
                let u = try #require(try await s.store.upload(uploadId: "loop"))
                if u.status == .refunded || (u.status == .failed && u.attempts >= sentBefore + 3) { break }
                if lastLife == .diesWithTheLastInFlight, sentBefore < sendsMax, u.status == .submitted, u.attempts == sendsMax { break }
                s.clock.advance(ms: 30_000)
                await manager.step()
            }
        }
        let u = try #require(try await s.store.upload(uploadId: "loop"))
        #expect(u.status == .refunded && lives == (lastLife == .diesWithTheLastInFlight ? 5 : 4), "\(u.status) after \(lives) lives")
        #expect(u.attempts == sendsMax && u.failureReason?.contains("across restarts") == true, "\(u)")
        let sent = try await s.store.gasTransactions(sinceMs: 0, limit: 100).filter { $0.uploadIds.contains("loop") && !$0.messageCid.isEmpty }
        #expect(sent.count == sendsMax)
        #expect(sent.allSatisfy { $0.status == .failed })
        if lastLife == .withCompany {
            for id in ["f1", "f2"] {
                let f = try #require(try await s.store.upload(uploadId: id))
                #expect(f.status == .failed && f.attempts == 1 && f.batchId == u.batchId, "\(f)")
            }
            #expect(await manager.retriesWaiting == 1, "the batch goes on without it")
            for _ in 0..<2_000 where try await s.store.upload(uploadId: "f2")?.status != .refunded {
                s.clock.advance(ms: 30_000)
                await manager.step()
            }
            for id in ["f1", "f2"] {
                let f = try #require(try await s.store.upload(uploadId: id))
                #expect(f.status == .refunded && f.attempts == sendsMax, "\(f)")
            }
        }
        let b = try await s.store.balance(userId: "u1")
        #expect(b.balance == 100 && b.reserved == 0)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }
}

/// A chain whose first push is taken but its answer lost: the caller learns only that the
/// message may be in flight (`pendingCid`).
final class LosingFirstPushAnswer: ChainWrapper {
    let inner: SimulatedChain
    let pushes = Mutex(0)
    init(inner: SimulatedChain) { self.inner = inner }
    func push(_ message: ChainMessage, recordingFirst record: @Sendable (String) async throws -> Void) async throws -> String {
        let cid = try await inner.push(message, recordingFirst: record)
        let n = pushes.withLock { n -> Int in
            n += 1
            return n
        }
        if n == 1 { throw ChainError("MpoolPush: the node did not answer (timeout)", retryable: true, pendingCid: cid) }
        return cid
    }
}

extension GasManagerTests {
    /// A push whose answer was lost after the chain took it is kept in flight under its CID:
    /// the upload is confirmed and captured once, by the one message, never pushed again.
    @Test func aPushWhoseAnswerWasLostIsKeptInFlight() async throws {
        let (s, chain) = try setup { LosingFirstPushAnswer(inner: $0) }
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        try await sendOne(s, "lp")
        let inFlight = await s.manager.messagesInFlight
        let waiting = await s.manager.retriesWaiting
        #expect(inFlight == 1 && waiting == 0)
        await s.run(epochs: 20)
        let u = try #require(try await s.store.upload(uploadId: "lp"))
        #expect(u.status == .confirmed)
        #expect(try await s.store.balance(userId: "u1").balance == 100 - u.creditsCharged)
        #expect(chain.pushes.withLock { $0 } == 1)
        let txs = try await s.store.gasTransactions(sinceMs: 0, limit: 10)
        #expect(txs.count == 1 && txs[0].status == .confirmed)
        #expect(s.chain.landedMessages().map(\.cid) == [txs[0].messageCid])
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }
}

extension GasManagerTests {
    /// A message that never lands and cannot be replaced is given up after the replacement
    /// budget, retried, and finally refunded: the hold is never left hanging.
    @Test func aMessageThatCannotBeReplacedIsGivenUpAndRefunded() async throws {
        var chainConfig = SimulatedChain.Config()
        chainConfig.stuckRatePPM = 1_000_000
        var config = FilecoinGasManager.Config()
        config.retry.attemptsMax = 2
        let (s, _) = try setup(chain: chainConfig, config: config) { RefusingReplacements(inner: $0) }
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        try await sendOne(s, "nr")
        await s.run(epochs: 400)
        #expect(try await s.store.upload(uploadId: "nr")?.status == .refunded)
        #expect(try await s.store.balance(userId: "u1").balance == 100)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }
}

extension GasManagerTests {
    /// A batch out of attempts whose given-up message is still watched (it may have landed) keeps
    /// its upload held, failed, for `landingGraceMs`, and refunds it then if no receipt came.
    /// `process-batch` with the batch's id does not send it again meanwhile: nothing is waiting
    /// to be sent.
    @Test func aBatchOutOfAttemptsIsRefundedAfterTheLandingGrace() async throws {
        var chainConfig = SimulatedChain.Config()
        chainConfig.stuckRatePPM = 1_000_000
        var config = FilecoinGasManager.Config()
        config.retry.attemptsMax = 1
        let s = try setup(chain: chainConfig, config: config)
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        try await sendUntilGivenUp(s, "gr")
        let batchId = try #require(try await s.store.upload(uploadId: "gr")?.batchId)
        let givenUpAt = s.clock.nowMs
        let notWaiting = await #expect(throws: CreditsError.self) { try await s.manager.processNow(batchId: batchId) }
        #expect(notWaiting?.code == .notFound)
        while s.clock.nowMs + 30_000 < givenUpAt + config.landingGraceMs {
            await s.run(epochs: 1)
        }
        #expect(try await s.store.upload(uploadId: "gr")?.status == .failed, "held through the grace")
        #expect(try await s.store.balance(userId: "u1").reserved > 0)
        await s.run(epochs: 2)
        #expect(try await s.store.upload(uploadId: "gr")?.status == .refunded)
        #expect(try await s.store.balance(userId: "u1").balance == 100)
        #expect(try await s.store.balance(userId: "u1").reserved == 0)
        #expect(s.chain.landedMessages().isEmpty)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }
}

extension GasManagerTests {
    /// Several instances on one database: a starting manager takes back its own previous
    /// process's uploads at once, leaves a live peer's in-flight uploads alone, and adopts a
    /// vanished peer's only after `takeoverAfterMs`.
    @Test func recoveryTakesItsOwnUploadsAndAPeersOnlyWhenStale() async throws {
        var chainConfig = SimulatedChain.Config()
        chainConfig.stuckRatePPM = 1_000_000  // nothing lands: the uploads stay in flight
        let s = try setup(chain: chainConfig)
        defer { s.dir.remove() }
        let (store, clock) = (s.store, s.clock)
        func manager(_ tag: String) -> FilecoinGasManager { instance(s, tag: tag, takeoverAfterMs: 600_000) }
        try await fund(s, "u1", 100)
        let a = manager("aaaa")
        for i in 0..<3 { _ = try await a.queueUpload(UploadRequest(uploadId: "t\(i)", userId: "u1", fileType: "audio", sizeBytes: 1)) }
        _ = try await a.processNow()
        #expect(try await store.upload(uploadId: "t0")?.status == .submitted)

        // A peer starting now leaves them to a.
        let b = manager("bbbb")
        try await b.recover()
        #expect(try await store.upload(uploadId: "t0")?.status == .submitted)
        // a restarting (same tag) takes its message in flight back at once: waited for under
        // its CID, not sent again.
        let a2 = manager("aaaa")
        try await a2.recover()
        #expect(try await store.upload(uploadId: "t0")?.status == .submitted)
        #expect(await a2.messagesInFlight == 1)
        // a2 vanishes; after the takeover delay the peer takes its message over in a step.
        clock.advance(ms: 300_000)
        await b.step()
        #expect(await b.messagesInFlight == 0)
        clock.advance(ms: 400_000)
        await b.step()
        #expect(await b.messagesInFlight == 1)  // waited for under its CID, not sent again
        #expect(try await store.upload(uploadId: "t0")?.status == .submitted)
        for _ in 0..<10 {
            clock.advance(ms: 30_000)
            await b.step()
        }
        // Stuck, it is replaced by b under its nonce (the same batch, a higher premium).
        let txs = try await store.gasTransactions(sinceMs: 0, limit: 100)
        #expect(txs.contains { $0.status == .replaced }, "\(txs.map { ($0.id, $0.status) })")
        #expect(txs.contains { $0.id.contains("_aaaa_") && $0.id.hasSuffix("-r1") })
        #expect(Set(txs.map(\.batchId)).count == 1, "\(txs.map(\.id))")  // never sent again as a batch of its own
        try await store.close()
    }
}
