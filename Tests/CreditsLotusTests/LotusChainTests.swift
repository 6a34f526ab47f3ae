import AsyncHTTPClient
import CreditsChain
import CreditsCore
@testable import CreditsLotus
import CreditsStore
import CreditsTestSupport
import CreditsWorker
import Foundation
import Logging
import LotusTestSupport
import Synchronization
import Testing

/// The gas manager's whole lifecycle through `LotusChain` against a fake Lotus node, with the
/// assertions the simulated-chain tests make (GasManagerTests), and every failure mode.
@Suite struct LotusChainTests {
    static let token = "eyJhbGciOiJIUzI1NiJ9.test-lotus-token.c2VjcmV0"

    struct Setup {
        var store: SQLiteStore
        var fake: FakeLotus
        var lotus: LotusChain
        var manager: FilecoinGasManager
        var clock: VirtualClock
        var logs: CapturedLogs

        /// Advances an epoch and runs a worker step until `done` or `epochs` have passed; the
        /// receipts arrive from waits on real sockets, so each step also gives them a moment.
        func run(epochs: Int, until done: () async throws -> Bool = { false }) async throws {
            for _ in 0..<epochs {
                clock.advance(ms: 30_000)
                await manager.step()
                if try await done() { return }
                try await Task.sleep(for: .milliseconds(3))
            }
        }
    }

    func withSetup(
        chain chainConfig: SimulatedChain.Config = .init(), config: FilecoinGasManager.Config = .init(),
        lotusConfig: @Sendable (inout LotusChain.Config) -> Void = { _ in }, _ body: @Sendable (Setup) async throws -> Void
    ) async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let clock = VirtualClock(startMs: 1_000_000)
        var chainConfig = chainConfig
        chainConfig.genesisMs = 1_000_000
        let fake = FakeLotus(chain: SimulatedChain(config: chainConfig, clock: clock.wallClock), token: Self.token)
        try await fake.serve { url in
            let logs = CapturedLogs()
            var lc = LotusChain.Config(url: url, token: Self.token, from: "f1sender", to: "f01234")
            lc.confidence = 1
            // Generous: on a loaded machine (CI runs the suites side by side on 2 cores) a call
            // of the fake node has taken over 2 s; tests about timeouts set their own.
            lc.callTimeoutMs = 10_000
            lc.historyRetryMs = 5
            // The simulated chain's base fee (0.1 nanoFIL per gas) makes a message cost up to
            // ~0.2 FIL, over the default MaxFee; `feesAreCappedAtMaxFee` tests the cap.
            lc.maxFee = 1_000_000_000_000_000_000
            lotusConfig(&lc)
            let lotus = LotusChain(config: lc, logger: logs.logger)
            let store = try SQLiteStore(path: dir.path + "/ledger.sqlite", clock: clock.wallClock)
            var config = config
            config.stuckAfterEpochs = max(config.stuckAfterEpochs, lc.confidence + 4)
            let manager = FilecoinGasManager(store: store, chain: lotus, clock: clock.wallClock, config: config, logger: logs.logger)
            do {
                try await body(Setup(store: store, fake: fake, lotus: lotus, manager: manager, clock: clock, logs: logs))
            } catch {
                try? await store.close()
                throw error
            }
            try await store.close()
            // The token travels in the Authorization header and nowhere in the logs.
            #expect(logs.lines.withLock { $0.allSatisfy { !$0.contains(Self.token) && !$0.contains("test-lotus-token") } })
        }
    }

    /// Funds u1 and sends one upload whose MpoolPush fails before the node takes the message;
    /// returns its row (pending: the message may be in flight, as far as the manager knows).
    func sendOneTheNodeNeverGets(_ s: Setup, _ uploadId: String, sourceLocation: SourceLocation = #_sourceLocation) async throws
        -> GasTransaction {
        s.fake.faults.withLock { $0.failNext = ["Filecoin.MpoolPush": 1] }
        try await fund(s, "u1", 100)
        _ = try await s.manager.queueUpload(UploadRequest(uploadId: uploadId, userId: "u1", fileType: "audio", sizeBytes: 1))
        _ = try await s.manager.processNow()
        let first = try #require(try await s.store.gasTransactions(sinceMs: 0, limit: 10).first, sourceLocation: sourceLocation)
        #expect(s.fake.nonce(of: first.messageCid) == nil, sourceLocation: sourceLocation)  // the node does not have it
        return first
    }

    /// A restarted process: a new adapter (which never saw the earlier messages) and manager on
    /// the same store and node, after `recover`.
    func restarted(_ s: Setup) async throws -> Setup {
        var s2 = s
        s2.lotus = LotusChain(config: s.lotus.config, logger: s.logs.logger)
        s2.manager = FilecoinGasManager(store: s.store, chain: s2.lotus, clock: s.clock.wallClock, config: s.manager.config,
                                        logger: s.logs.logger)
        try await s2.manager.recover()
        return s2
    }

    func fund(_ s: Setup, _ user: String, _ credits: Int64) async throws {
        _ = try await s.store.execute(.adjust(AdjustmentRequest(userId: user, credits: credits, adjustmentId: "fund-\(user)", reason: "test")),
                                      idempotencyKey: nil)
    }

    @Test func headReadsTheBaseFeeAsABigIntegerString() async throws {
        try await withSetup { s in
            let head = try await s.lotus.head()
            #expect(head.baseFee == 100_000_000 && head.height == 0)
            #expect(s.fake.authorizations == ["Bearer \(Self.token)"])
        }
    }

    /// The model mode's history at start: `baseFees(heights:)` reads the tipset after each
    /// height (ChainGetTipSetAfterHeight) and matches the chain's base fees; `loadHistory` hands the last
    /// `historyAtStartEpochs` to the policy, whose model is then fitted at the first step. A
    /// manager that did not load it, or whose node refused a height on every try, still decides by
    /// the rules; a height refused on fewer tries is asked again.
    @Test func theModelModeLoadsTheChainsRecentBaseFees() async throws {
        var config = FilecoinGasManager.Config()
        var model = BatchPolicy.ModelConfig()
        model.fitEpochsMin = 200
        model.historyAtStartEpochs = 250
        config.policy.model = model
        try await withSetup(config: config) { s in
            s.clock.advance(ms: 300 * 30_000)
            let head = try await s.lotus.head()
            #expect(head.height == 300)
            let fees = try await s.lotus.baseFees(heights: 10...14)
            #expect(fees == Array(s.fake.chain.baseFeeHistory()[10...14]))
            #expect(s.fake.calls.filter { $0 == "Filecoin.ChainGetTipSetAfterHeight" }.count == 5)

            let plain = FilecoinGasManager(store: s.store, chain: s.lotus, clock: s.clock.wallClock, config: s.manager.config)
            await plain.step()
            #expect(await plain.isPolicyModelFitted == false)

            // A height refused as often as the calls are tried: no history.
            let attempts = s.lotus.config.historyAttempts
            s.fake.faults.withLock { $0.failHeights = [200: attempts] }
            await s.manager.loadHistory()
            await s.manager.step()
            #expect(await s.manager.isPolicyModelFitted == false)
            #expect(s.logs.lines.withLock { $0.contains { $0.contains("base-fee history unavailable") } })

            // Refused fewer times than that (a node that limits calls): tried again, loaded. The
            // step above learned height 300, so the history brings the 249 before it, and the
            // next step, at the same head, fits the model.
            s.fake.faults.withLock { $0.failHeights = [200: attempts - 1] }
            await s.manager.loadHistory()
            await s.manager.step()
            #expect(await s.manager.isPolicyModelFitted)
            #expect(s.logs.lines.withLock { $0.contains { $0.contains("base-fee history loaded") && $0.contains("249") } })
            #expect(await s.manager.policyBaseFees == Array(s.fake.chain.baseFeeHistory()[51...300]))
        }
    }

    /// Lotus runs a tipset's messages at its blocks' ParentBaseFee, computed from the tipset
    /// before: the head's own is an epoch old. `head` computes the next one from the head's
    /// blocks' messages, by the rule of the node's network version, as Lotus will: under either
    /// rule it equals the simulated chain's base fee at the head's height (the fake serves
    /// messages that carry the same demand, one of them in two blocks), not the ParentBaseFee.
    /// Once a head: a second `head` at the same height asks only for ChainHead. `baseFees` gives
    /// the same fees, the head's height included. When a block's messages are refused, the
    /// ParentBaseFee stands in for that call.
    @Test(arguments: BaseFeeRule.allCases)
    func theHeadsBaseFeeIsTheOneTheNextMessagesPay(rule: BaseFeeRule) async throws {
        var chain = SimulatedChain.Config()
        chain.trace = .spiky
        chain.rule = rule
        chain.seed = 4
        try await withSetup(chain: chain) { s in
            var behind = 0
            for height in Int64(1)...60 {
                s.clock.advance(ms: 30_000)
                let head = try await s.lotus.head()
                let fees = s.fake.chain.baseFeeHistory()
                #expect(head.height == height && head.baseFee == fees[Int(height)], "height \(height)")
                let parent = try #require((s.fake.tipset(height: height)["Blocks"] as? [[String: Any]])?.first?["ParentBaseFee"] as? String)
                if Int128(parent, radix: 10) != head.baseFee { behind += 1 }
            }
            #expect(behind > 50, "the ParentBaseFee differed from the next base fee at \(behind) of 60 heights")
            let calls = s.fake.calls.count
            _ = try await s.lotus.head()
            #expect(Array(s.fake.calls.dropFirst(calls)) == ["Filecoin.ChainHead"])
            #expect(try await s.lotus.baseFees(heights: 1...60) == Array(s.fake.chain.baseFeeHistory()[1...60]))
            await #expect(throws: ChainError.self) { try await s.lotus.baseFees(heights: 59...61) }

            // A block's messages refused: the head's ParentBaseFee stands in (an epoch old, but a
            // tick that has a head still sends what is due), logged; the next call computes it.
            s.clock.advance(ms: 30_000)
            s.fake.faults.withLock { $0.failNext = ["Filecoin.ChainGetBlockMessages": 1] }
            let fees = s.fake.chain.baseFeeHistory()
            try #require(fees[60] != fees[61])
            #expect(try await s.lotus.head() == ChainHead(height: 61, baseFee: fees[60]))
            #expect(s.logs.lines.withLock { $0.contains { $0.contains("ParentBaseFee stands in") } })
            #expect(try await s.lotus.head() == ChainHead(height: 61, baseFee: fees[61]))
        }
    }

    /// A head's calls after ChainHead go out together: each block's ChainGetBlockMessages and
    /// StateNetworkVersion, so that a head costs one round trip to the node, not six. The node
    /// holds each block's call until all five are in flight (one after another, each would wait
    /// out the hold, and the fee would be the ParentBaseFee standing in).
    @Test func aHeadsBlocksAreAskedForTogether() async throws {
        try await withSetup { s in
            s.clock.advance(ms: 5 * 30_000)
            s.fake.faults.withLock { $0.gather = ["Filecoin.ChainGetBlockMessages": Int(Filecoin.blocksPerTipset)] }
            let head = try await s.lotus.head()
            #expect(head == ChainHead(height: 5, baseFee: s.fake.chain.baseFeeHistory()[5]))
            #expect(s.fake.mostInFlight("Filecoin.ChainGetBlockMessages") == Int(Filecoin.blocksPerTipset))
            #expect(s.fake.calls.filter { $0 == "Filecoin.ChainGetBlockMessages" }.count == Int(Filecoin.blocksPerTipset))
            #expect(!s.logs.lines.withLock { $0.contains { $0.contains("stands in") } })
        }
    }

    /// ChainGetBlockMessages' answer as Lotus gives it (null for an empty list), and a malformed
    /// one (a field missing, a gas limit no block can hold) refused as a retryable error.
    @Test func blockMessagesAreReadBlsThenSecpk() throws {
        let message: [String: Any] = ["From": "f1a", "Nonce": 7, "GasLimit": 1_000, "GasFeeCap": "5000", "GasPremium": "300"]
        let read = try LotusChain.messages(["BlsMessages": NSNull(), "SecpkMessages": [["Message": message, "Signature": [:]]],
                                            "Cids": [["/": "bafyc1"]]])
        #expect(read == [TipsetMessage(cid: "bafyc1", from: "f1a", nonce: 7, gasLimit: 1_000, feeCap: 5_000, premium: 300)])
        #expect(try LotusChain.messages(["BlsMessages": NSNull(), "SecpkMessages": NSNull(), "Cids": NSNull()]).isEmpty)
        #expect(throws: ChainError.self) { try LotusChain.messages(["BlsMessages": [message], "SecpkMessages": [], "Cids": []]) }
        var bad = message
        bad["GasPremium"] = nil
        #expect(throws: ChainError.self) { try LotusChain.messages(["BlsMessages": [bad], "SecpkMessages": [], "Cids": [["/": "x"]]]) }
        // A gas limit no block can hold (summed, such limits would overflow): refused, not added.
        for limit in [Int(Filecoin.blockGasLimit) + 1, -1, Int.max] {
            var huge = message
            huge["GasLimit"] = limit
            #expect(throws: ChainError.self) { try LotusChain.messages(["BlsMessages": [huge], "SecpkMessages": [], "Cids": [["/": "x"]]]) }
        }
        var full = message
        full["GasLimit"] = Int(Filecoin.blockGasLimit)
        #expect(try LotusChain.messages(["BlsMessages": [full], "SecpkMessages": [], "Cids": [["/": "x"]]]).first?.gasLimit == Filecoin.blockGasLimit)
    }

    /// A day of history is 2,880 calls: they go `historyConcurrency` at a time (never more), and
    /// the base fees come back in height order, also when some heights are refused and asked again.
    @Test func historyHeightsAreAskedAFewAtATimeAndKeptInOrder() async throws {
        try await withSetup { s in
            s.clock.advance(ms: 100 * 30_000)
            _ = try await s.lotus.head()
            let method = "Filecoin.ChainGetTipSetAfterHeight"
            s.fake.faults.withLock { $0.tipsetDelayMs = 20 }

            var one = s.lotus.config
            one.historyConcurrency = 1
            let serial = LotusChain(config: one, logger: s.logs.logger)
            #expect(try await serial.baseFees(heights: 3...9) == Array(s.fake.chain.baseFeeHistory()[3...9]))
            #expect(s.fake.mostInFlight(method) == 1)

            // Heights 10, 46 and 73's base fees: the tipsets at 11, 47 and 74 paid them.
            s.fake.faults.withLock { $0.failHeights = [11: 1, 47: 2, 74: 3] }
            let fees = try await s.lotus.baseFees(heights: 10...73)
            #expect(fees == Array(s.fake.chain.baseFeeHistory()[10...73]))
            #expect(s.fake.faultsSpent)
            let most = s.fake.mostInFlight(method)
            #expect(most > 1 && most <= s.lotus.config.historyConcurrency, "\(most) calls at once")
        }
    }

    /// StateWaitMsg blocks until its message lands: one such call per message in flight. Twelve
    /// of them held by the node neither queue behind each other nor hold up ChainHead (an HTTP
    /// client allows 8 connections to a host; the waits once took them all, and every other
    /// call waited for a message to land).
    @Test func messagesWaitedForDoNotHoldUpTheOtherCalls() async throws {
        try await withSetup { s in
            s.fake.faults.withLock { $0.waitHoldMs = 12_000 }
            for i in 0..<12 { _ = try await s.lotus.receipt(cid: "bafyunlanded\(i)") }
            await waitUntil(polls: 2_000, everyMs: 5) { s.fake.inFlight("Filecoin.StateWaitMsg") >= 12 }
            #expect(s.fake.inFlight("Filecoin.StateWaitMsg") == 12)
            var quick = s.lotus.config
            quick.callTimeoutMs = 6_000
            let head = try await LotusChain(config: quick, logger: s.logs.logger).head()
            #expect(head.height == 0)
        }
    }

    /// GasManagerTests.tenUploadsForcedIntoOneBatchAreConfirmedAndCaptured, through Lotus.
    @Test func tenUploadsForcedIntoOneBatchAreConfirmedAndCaptured() async throws {
        try await withSetup { s in
            try await fund(s, "u1", 1_000)
            for i in 0..<10 {
                let r = try await s.manager.queueUpload(UploadRequest(uploadId: "f\(i)", userId: "u1", fileType: "audio", sizeBytes: 1_000, priority: .low))
                guard case .queued = r.outcome else { Issue.record("\(r)"); return }
            }
            #expect(try await s.store.balance(userId: "u1").reserved == 150)
            let batches = try await s.manager.processNow()
            #expect(batches.count == 1)
            #expect(try await s.store.upload(uploadId: "f0")?.status == .submitted)
            try await s.run(epochs: 1_000) { try await s.store.upload(uploadId: "f9")?.status == .confirmed }
            for i in 0..<10 {
                let u = try #require(try await s.store.upload(uploadId: "f\(i)"))
                #expect(u.status == .confirmed && u.creditsCharged == 15 && u.batchId == batches[0])
            }
            let b = try await s.store.balance(userId: "u1")
            #expect((b.balance, b.reserved, b.totalSpent) == (850, 0, 150))
            let stats = try await s.manager.getGasStats(days: 1)
            #expect(stats.batches == 1 && stats.uploads == 10 && stats.averageBatchSizeHundredths == 1_000)
            let model = BatchGasModel.addPieces.savingsPPM(items: 10)
            #expect(abs(stats.batchingSavingsPPM - model) < 10_000, "measured \(stats.batchingSavingsPPM) ppm, model \(model) ppm")
            // The recorded cost is StateReplay's, to the attoFIL.
            // (The confirmed row: under load a slow receipt may have had the message replaced first.)
            let tx = try #require(try await s.store.gasTransactions(sinceMs: 0, limit: 10).first { $0.status == .confirmed })
            let landed = try #require(try await s.fake.chain.receipt(cid: tx.messageCid))
            #expect(tx.totalCost == landed.cost.total && landed.messageCid == tx.messageCid)
            for method in ["GasEstimateMessageGas", "MpoolGetNonce", "WalletSignMessage", "MpoolPush"] {
                #expect(s.fake.calls.contains("Filecoin.\(method)"), "\(method) not called")
            }
            #expect(s.fake.nonce(of: tx.messageCid) == 0)
            #expect(s.fake.calls.contains("Filecoin.StateWaitMsg") && s.fake.calls.contains("Filecoin.StateReplay"))
            #expect(try await s.store.reconcile().ok)
        }
    }

    /// A message that never lands is replaced under its own nonce with at least 1.25× the
    /// premium (WalletSignMessage + MpoolPush), and so are its later attempts; when none lands,
    /// the upload is refunded.
    @Test func aMessageThatNeverLandsIsReplacedUnderItsNonceThenRefunded() async throws {
        var chain = SimulatedChain.Config()
        chain.stuckRatePPM = 1_000_000
        var config = FilecoinGasManager.Config()
        config.retry.attemptsMax = 2
        config.retry.delayBaseMs = 30_000
        try await withSetup(chain: chain, config: config) { s in
            try await fund(s, "u1", 100)
            _ = try await s.manager.queueUpload(UploadRequest(uploadId: "f", userId: "u1", fileType: "audio", sizeBytes: 1))
            _ = try await s.manager.processNow()
            try await s.run(epochs: 600) { try await s.store.upload(uploadId: "f")?.status == .refunded }
            #expect(try await s.store.upload(uploadId: "f")?.status == .refunded)
            #expect(try await s.store.balance(userId: "u1").balance == 100)
            let txs = try await s.store.gasTransactions(sinceMs: 0, limit: 100)
            let replaced = txs.filter { $0.status == .replaced }
            #expect(!replaced.isEmpty)
            #expect(s.fake.calls.contains("Filecoin.WalletSignMessage") && s.fake.calls.contains("Filecoin.MpoolPush"))
            // Each replacement kept the nonce of the message it replaced and raised the premium ≥ 1.25×.
            let byId = Dictionary(uniqueKeysWithValues: txs.map { ($0.id, $0) })
            var checked = 0
            for tx in replaced {
                guard let r = tx.id.split(separator: "-").last, r.hasPrefix("r"), let n = Int(r.dropFirst()),
                      let next = byId[String(tx.id.dropLast(r.count) + "r\(n + 1)")]
                else { continue }
                #expect(next.premium * 4 >= tx.premium * 5)
                #expect(s.fake.nonce(of: next.messageCid) == s.fake.nonce(of: tx.messageCid))
                checked += 1
            }
            #expect(checked > 0)
            // Its later attempts replaced it too: one nonce for all, never a second one.
            #expect(Set(txs.map(\.attempt)).count > 1)
            #expect(Set(txs.map { s.fake.nonce(of: $0.messageCid) }) == [0])
            #expect(try await s.store.reconcile().ok)
        }
    }

    /// A given-up message of a refunded batch is watched for a week, then let go: the adapter
    /// then drops its signed copy and its wait too (before 2026-12-03 it kept the copy for good).
    @Test func aGivenUpMessageLetGoIsForgottenByTheAdapter() async throws {
        var chain = SimulatedChain.Config()
        chain.stuckRatePPM = 1_000_000
        var config = FilecoinGasManager.Config()
        config.retry.attemptsMax = 1
        let week = config.givenUpWatchMs
        try await withSetup(chain: chain, config: config) { s in
            try await fund(s, "u1", 100)
            _ = try await s.manager.queueUpload(UploadRequest(uploadId: "f", userId: "u1", fileType: "audio", sizeBytes: 1))
            _ = try await s.manager.processNow()
            try await s.run(epochs: 200) { try await s.store.upload(uploadId: "f")?.status == .refunded }
            #expect(try await s.store.upload(uploadId: "f")?.status == .refunded)
            #expect(await s.manager.messagesInFlight == 1)
            #expect(s.lotus.messagesKept.messages == 1)
            s.clock.advance(ms: week)
            try await s.run(epochs: 1)
            #expect(await s.manager.messagesInFlight == 0)
            let kept = s.lotus.messagesKept
            #expect(kept.messages == 0 && kept.waits == 0, "\(kept)")
            #expect(try await s.store.reconcile().ok)
        }
    }

    /// Someone else replaces the message before it lands (an operator's `lotus mpool replace`):
    /// StateWaitMsg on the original CID returns the replacement's lookup, and the batch is
    /// settled on the message that landed.
    @Test func aMessageReplacedElsewhereIsNoticedAndSettled() async throws {
        try await withSetup { s in
            try await fund(s, "u1", 100)
            _ = try await s.manager.queueUpload(UploadRequest(uploadId: "f", userId: "u1", fileType: "audio", sizeBytes: 1))
            _ = try await s.manager.processNow()
            let original = try #require(try await s.store.gasTransactions(sinceMs: 0, limit: 10).first).messageCid
            let replacement = try await s.fake.replaceElsewhere(original)  // before the next tipset includes it
            try await s.run(epochs: 1_000) { try await s.store.upload(uploadId: "f")?.status == .confirmed }
            #expect(try await s.store.upload(uploadId: "f")?.status == .confirmed)
            let tx = try #require(try await s.store.gasTransactions(sinceMs: 0, limit: 10).first)
            #expect(tx.messageCid == replacement && tx.status == .confirmed)
            #expect(s.logs.lines.withLock { $0.contains { $0.contains("replaced message landed") } })
            #expect(try await s.store.reconcile().ok)
        }
    }

    /// RPC errors and timeouts on every method, and a push whose answer is lost after the node
    /// took it (kept in flight, never sent again as a new message): each ends in a retry, a
    /// replacement or a refund; every upload ends confirmed or refunded, no hold is lost, and
    /// no upload is stored by two messages.
    @Test func rpcErrorsTimeoutsAndALostPushEndConfirmedOrRefunded() async throws {
        var chain = SimulatedChain.Config()
        chain.seed = 11
        chain.revertRatePPM = 300_000
        chain.stuckRatePPM = 50_000
        chain.rpcErrorRatePPM = 30_000
        var config = FilecoinGasManager.Config()
        config.retry.attemptsMax = 3
        config.retry.delayBaseMs = 30_000
        config.retry.delayMaxMs = 120_000
        try await withSetup(chain: chain, config: config, lotusConfig: { $0.callTimeoutMs = 300 }) { s in
            s.fake.faults.withLock {
                $0.hangMs = 1_000
                $0.failNext = ["Filecoin.MpoolPush": 2, "Filecoin.StateReplay": 2, "Filecoin.GasEstimateMessageGas": 1,
                               "Filecoin.MpoolGetNonce": 1, "Filecoin.WalletSignMessage": 1]
                $0.hangNext = ["Filecoin.ChainHead": 1, "Filecoin.MpoolPush": 1, "Filecoin.StateWaitMsg": 1]
                $0.hangAfterNext = ["Filecoin.MpoolPush": 1]
            }
            let users = (0..<3).map { "user_\($0)" }
            for u in users { try await fund(s, u, 100_000) }
            var queued: [String: Int64] = [:]
            for i in 0..<30 {
                let r = try await s.manager.queueUpload(UploadRequest(
                    uploadId: "up_\(i)", userId: users[i % 3], fileType: ["audio", "video", "album"][i % 3], sizeBytes: 10,
                    priority: UploadPriority.allCases[i % 3]))
                if case .queued(let receipt) = r.outcome { queued["up_\(i)"] = receipt.creditsReserved }
                if i % 5 == 0 { try await s.run(epochs: 1) }
            }
            let ids = Array(queued.keys)
            try await s.run(epochs: 3_000) {
                for id in ids {
                    let status = try await s.store.upload(uploadId: id)?.status
                    if status != .confirmed && status != .refunded { return false }
                }
                return true
            }
            var captured: Int64 = 0
            var balance: Int64 = 0
            for (id, credits) in queued {
                let u = try #require(try await s.store.upload(uploadId: id))
                #expect(u.status == .confirmed || u.status == .refunded, "\(id) ended \(u.status)")
                if u.status == .confirmed { captured += credits }
            }
            for u in users {
                let b = try await s.store.balance(userId: u)
                #expect(b.reserved == 0)
                balance += b.balance
            }
            #expect(balance == 3 * 100_000 - captured)
            #expect(s.fake.faultsSpent, "\(s.fake.faults.withLock { $0 })")
            expectNoUploadStoredTwice(s.fake.chain)
            // (Whether the 30% revert rate strikes depends on how many calls the real-time waits
            // make, so reverts are not asserted here; GasManagerTests covers them deterministically.
            // The injected errors and hangs above are deterministic and all were hit.)
            let report = try await s.store.reconcile()
            #expect(report.ok, "\(report.problems)")
        }
    }

    /// MpoolPush takes the message, then its answer is lost (a timeout): the message is kept in
    /// flight under the CID it was signed with and lands once; the batch is not pushed again.
    @Test func aPushWhoseAnswerIsLostIsWaitedForNotSentTwice() async throws {
        // 5 s a call against a 12 s hang: under a loaded machine a short timeout can fail an
        // earlier call of the push (estimate, nonce, signature) instead of MpoolPush's answer.
        try await withSetup(lotusConfig: { $0.callTimeoutMs = 5_000 }) { s in
            s.fake.faults.withLock {
                $0.hangMs = 12_000
                $0.hangAfterNext = ["Filecoin.MpoolPush": 1]
            }
            try await fund(s, "u1", 100)
            _ = try await s.manager.queueUpload(UploadRequest(uploadId: "lost", userId: "u1", fileType: "audio", sizeBytes: 1))
            _ = try await s.manager.processNow()
            #expect(s.fake.faultsSpent)
            #expect(try await s.store.upload(uploadId: "lost")?.status == .submitted)
            try await s.run(epochs: 1_000) { try await s.store.upload(uploadId: "lost")?.status == .confirmed }
            #expect(try await s.store.upload(uploadId: "lost")?.status == .confirmed)
            let txs = try await s.store.gasTransactions(sinceMs: 0, limit: 10)
            // One message: replaced under its nonce if the receipt was slow, never pushed again.
            let confirmed = txs.filter { $0.status == .confirmed }
            #expect(confirmed.count == 1 && s.fake.chain.landedMessages().map(\.cid) == confirmed.map(\.messageCid))
            #expect(Set(txs.map { s.fake.nonce(of: $0.messageCid) }) == [0])
            let charged = try #require(try await s.store.upload(uploadId: "lost")).creditsCharged
            let balance = try await s.store.balance(userId: "u1").balance
            #expect(charged > 0 && balance == 100 - charged)  // captured once
            expectNoUploadStoredTwice(s.fake.chain)
            #expect(try await s.store.reconcile().ok)
        }
    }

    /// MpoolPush fails before the node takes the message: it stays in flight, and the next push
    /// first sends that same signed message again, so it keeps its nonce and no later message
    /// takes it; both land, once each, at nonces 0 and 1.
    @Test func aPushTheNodeNeverGotIsSentAgainBeforeTheNextMessage() async throws {
        try await withSetup { s in
            let first = try await sendOneTheNodeNeverGets(s, "a")
            _ = try await s.manager.queueUpload(UploadRequest(uploadId: "b", userId: "u1", fileType: "audio", sizeBytes: 1))
            _ = try await s.manager.processNow()
            #expect(s.fake.nonce(of: first.messageCid) == 0)
            try await s.run(epochs: 1_000) {
                let a = try await s.store.upload(uploadId: "a")?.status
                let b = try await s.store.upload(uploadId: "b")?.status
                return a == .confirmed && b == .confirmed
            }
            let txs = try await s.store.gasTransactions(sinceMs: 0, limit: 10)
            let confirmed = txs.filter { $0.status == .confirmed }
            #expect(confirmed.count == 2)
            #expect(Set(txs.map { s.fake.nonce(of: $0.messageCid) }) == [0, 1])
            #expect(s.logs.lines.withLock { $0.contains { $0.contains("was sent again") } })
            expectNoUploadStoredTwice(s.fake.chain)
            #expect(try await s.store.reconcile().ok)
        }
    }

    /// MpoolPush fails before the node takes the message, and the process restarts before
    /// sending it again: the new process asks the node (ChainGetMessage: "block not found"),
    /// closes the row as never sent and queues the upload again, which then lands once, at nonce 0.
    @Test func aPushTheNodeNeverGotIsQueuedAgainAfterARestart() async throws {
        var config = FilecoinGasManager.Config()
        config.instanceTag = "aaaa"
        try await withSetup(config: config) { s in
            let first = try await sendOneTheNodeNeverGets(s, "ng")
            s.clock.advance(ms: 30_000)  // the restart takes a while (batch ids carry the time)
            let s2 = try await restarted(s)
            #expect(await s2.manager.messagesInFlight == 0)
            #expect(try await s.store.upload(uploadId: "ng")?.status == .queued)
            _ = try await s2.manager.processNow()
            try await s2.run(epochs: 1_000) { try await s.store.upload(uploadId: "ng")?.status == .confirmed }
            let u = try #require(try await s.store.upload(uploadId: "ng"))
            #expect(u.status == .confirmed)
            let txs = try await s.store.gasTransactions(sinceMs: 0, limit: 10)
            #expect(txs.first { $0.id == first.id }?.status == .unsent)
            let confirmed = txs.filter { $0.status == .confirmed }
            #expect(confirmed.count == 1 && s.fake.chain.landedMessages().map(\.cid) == confirmed.map(\.messageCid))
            #expect(confirmed.first.map { s.fake.nonce(of: $0.messageCid) } == 0)
            #expect(try await s.store.balance(userId: "u1").balance == 100 - u.creditsCharged)
            #expect(try await s.store.reconcile().ok)
        }
    }

    /// A restart while a message is in flight: the new process (a new adapter, which never saw
    /// the message) waits for it under its CID; it lands once and is captured once.
    @Test func aRestartedProcessWaitsForItsMessageInFlight() async throws {
        var config = FilecoinGasManager.Config()
        config.instanceTag = "aaaa"
        try await withSetup(config: config) { s in
            try await fund(s, "u1", 100)
            _ = try await s.manager.queueUpload(UploadRequest(uploadId: "rs", userId: "u1", fileType: "audio", sizeBytes: 1))
            _ = try await s.manager.processNow()
            let s2 = try await restarted(s)
            #expect(await s2.manager.messagesInFlight == 1)
            try await s2.run(epochs: 1_000) { try await s.store.upload(uploadId: "rs")?.status == .confirmed }
            let u = try #require(try await s.store.upload(uploadId: "rs"))
            #expect(u.status == .confirmed)
            #expect(s.fake.chain.landedMessages().count == 1)
            let txs = try await s.store.gasTransactions(sinceMs: 0, limit: 10)
            #expect(Set(txs.map { s.fake.nonce(of: $0.messageCid) }) == [0])  // waited for (or replaced), never pushed again
            #expect(try await s.store.balance(userId: "u1").balance == 100 - u.creditsCharged)
            #expect(try await s.store.reconcile().ok)
        }
    }

    /// A new adapter replaces a message an earlier process sent by reading it back
    /// (ChainGetMessage): the replacement keeps its nonce.
    @Test func aMessageFromAnEarlierProcessIsReplacedUnderItsNonce() async throws {
        var chain = SimulatedChain.Config()
        chain.stuckRatePPM = 1_000_000
        try await withSetup(chain: chain) { s in
            try await fund(s, "u1", 100)
            _ = try await s.manager.queueUpload(UploadRequest(uploadId: "old", userId: "u1", fileType: "audio", sizeBytes: 1))
            _ = try await s.manager.processNow()
            let tx = try #require(try await s.store.gasTransactions(sinceMs: 0, limit: 10).first)
            let restarted = LotusChain(config: s.lotus.config, logger: s.logs.logger)
            let premium = RetrySchedule.replacementPremium(tx.premium)
            let cid = try await restarted.replace(tx.messageCid, with: ChainMessage(
                uploadIds: tx.uploadIds, gasLimit: tx.gasLimit, feeCap: tx.feeCap + premium, premium: premium))
            #expect(cid != tx.messageCid && s.fake.nonce(of: cid) == s.fake.nonce(of: tx.messageCid))
            #expect(s.fake.calls.contains("Filecoin.ChainGetMessage"))
        }
    }

    /// Pushes made at the same time take nonces one after another: each reads the next nonce
    /// only after the one before it was sent.
    @Test func concurrentPushesTakeDistinctNonces() async throws {
        try await withSetup { s in
            let cids = try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<6 {
                    group.addTask {
                        try await s.lotus.push(ChainMessage(uploadIds: ["c\(i)"], gasLimit: 0, feeCap: 400_000_000, premium: 100_000))
                    }
                }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(Set(cids.compactMap { s.fake.nonce(of: $0) }) == Set(0..<6))
        }
    }

    /// As Lotus's CapGasFee: fee cap × gas limit never passes MaxFee; the premium never passes
    /// the fee cap. A message under the cap is left alone.
    @Test func feesAreCappedAtMaxFee() {
        var config = LotusChain.Config(url: "http://127.0.0.1:9", token: Self.token, from: "f1a", to: "f01")
        config.maxFee = 1_000_000
        let lotus = LotusChain(config: config)
        var msg: [String: Any] = ["GasLimit": 1_000, "GasFeeCap": "5000", "GasPremium": "3000"]
        lotus.capFee(&msg)
        #expect(msg["GasFeeCap"] as? String == "1000" && msg["GasPremium"] as? String == "1000")
        msg = ["GasLimit": 1_000, "GasFeeCap": "900", "GasPremium": "300"]
        lotus.capFee(&msg)
        #expect(msg["GasFeeCap"] as? String == "900" && msg["GasPremium"] as? String == "300")
    }

    @Test func aRefusedTokenIsAFinalErrorThatDoesNotEchoTheToken() async throws {
        try await withSetup(lotusConfig: { $0.token = "wrong-token-value" }) { s in
            do {
                _ = try await s.lotus.head()
                Issue.record("a refused token was accepted")
            } catch let e as ChainError {
                #expect(!e.retryable && e.message.contains("refused the API token"))
                #expect(!e.message.contains("wrong-token-value"))
            }
        }
    }

    @Test func anUnreachableNodeIsARetryableError() async throws {
        var config = LotusChain.Config(url: "http://127.0.0.1:9", token: Self.token, from: "f1a", to: "f01")
        config.callTimeoutMs = 500  // the HTTP client retries a refused connection until the deadline
        let lotus = LotusChain(config: config)
        do {
            _ = try await lotus.head()
            Issue.record("no error from a closed port")
        } catch let e as ChainError {
            #expect(e.retryable && e.message.contains("did not answer"))
            #expect(!e.message.contains(Self.token))
        }
    }

    @Test func jsonRpcErrorsAreClassified() {
        #expect(!LotusChain.retryable(code: -32601, message: "method not found"))
        #expect(!LotusChain.retryable(code: 1, message: "mpool push: not enough funds"))
        #expect(LotusChain.retryable(code: 1, message: "context deadline exceeded"))
        #expect(LotusChain.retryable(code: -32603, message: "internal error"))
    }
}

/// Every upload is in at most one message that landed without reverting: no upload's gas was
/// paid twice for the same storage.
func expectNoUploadStoredTwice(_ chain: SimulatedChain, sourceLocation: SourceLocation = #_sourceLocation) {
    var seen: Set<String> = []
    for landed in chain.landedMessages() where !landed.reverted {
        for id in landed.message.uploadIds {
            #expect(seen.insert(id).inserted, "\(id) stored by two messages", sourceLocation: sourceLocation)
        }
    }
}
