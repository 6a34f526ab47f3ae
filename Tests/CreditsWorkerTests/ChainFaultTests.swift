import CreditsChain
import CreditsCore
import CreditsTestSupport
import CreditsWorker
import Synchronization
import Testing

// The gas manager against a chain that misbehaves the way a Lotus node can: heads that come late
// or not at all, a history slow to serve, pushes that fail or are refused, slow head calls. Each
// wrapper below is followed by the tests that use it.

/// A chain whose head lags the simulated chain's by a scripted number of heights at each call to
/// `head()` (nil: the call fails), as a Lotus node's does when a block comes late within its
/// epoch. Everything else goes to the chain underneath; with `short`, `baseFees(heights:)`
/// answers one base fee fewer than asked (a node that left a height out). A failed head call
/// takes `failureTime` (none until set).
final class LateHeads: ChainWrapper {
    let inner: SimulatedChain
    let short: Bool
    let failureTime = CallTime()
    private let script: Mutex<[Int?]>
    private let asked = Mutex<[ClosedRange<Int64>]>([])
    private let served = Mutex<(calls: Int, last: ChainHead?)>((0, nil))

    init(_ inner: SimulatedChain, lags: [Int?], short: Bool = false) {
        self.inner = inner
        self.short = short
        script = Mutex(lags)
    }

    /// The heights asked for through `baseFees(heights:)`, in order.
    var heightsAsked: [ClosedRange<Int64>] { asked.withLock { $0 } }
    /// How many times `head()` was called, and the last head it answered.
    var headCalls: (calls: Int, last: ChainHead?) { served.withLock { $0 } }

    func head() async throws -> ChainHead {
        let now = try await inner.head()
        let lag = script.withLock { $0.isEmpty ? 0 : $0.removeFirst() }
        served.withLock { $0.calls += 1 }
        guard let lag else {
            failureTime.pass()
            throw ChainError("head unavailable", retryable: true)
        }
        let height = now.height - Int64(lag)
        let head = ChainHead(height: height, baseFee: try await inner.baseFees(heights: height...height)[0])
        served.withLock { $0.last = head }
        return head
    }

    func baseFees(heights: ClosedRange<Int64>) async throws -> [Int128] {
        asked.withLock { $0.append(heights) }
        let fees = try await inner.baseFees(heights: heights)
        return short ? Array(fees.dropLast()) : fees
    }
}

/// A chain whose first `baseFees(heights:)` call waits until `open()`: a node slow to serve the
/// history at start, while ticks go on.
final class SlowHistory: ChainWrapper {
    let inner: SimulatedChain
    private let gate = Mutex<(entered: Bool, opened: Bool, waiting: CheckedContinuation<Void, Never>?)>((false, false, nil))

    init(_ inner: SimulatedChain) { self.inner = inner }

    /// Whether the first call has come and waits.
    var entered: Bool { gate.withLock { $0.entered } }

    func open() {
        gate.withLock { g -> CheckedContinuation<Void, Never>? in
            g.opened = true
            defer { g.waiting = nil }
            return g.waiting
        }?.resume()
    }

    func baseFees(heights: ClosedRange<Int64>) async throws -> [Int128] {
        let first = gate.withLock { g in
            defer { g.entered = true }
            return !g.entered
        }
        if first {
            await withCheckedContinuation { c in
                let go = gate.withLock { g in
                    if g.opened { return true }
                    g.waiting = c
                    return false
                }
                if go { c.resume() }
            }
        }
        return try await inner.baseFees(heights: heights)
    }
}

extension GasManagerTests {
    /// The history at start asked for at head 200, and served slowly: meanwhile the first tick
    /// comes at head 203. The history (101...200) goes first, then the heights between it and
    /// the first tick (201...202, asked for then), then 203: each height once, in order.
    @Test func theHeightsBetweenTheHistoryAtStartAndTheFirstTickAreAskedFor() async throws {
        var config = FilecoinGasManager.Config()
        var model = BatchPolicy.ModelConfig()
        model.historyAtStartEpochs = 100
        config.policy.model = model
        let (s, chain) = try setup(config: config) { SlowHistory($0) }
        defer { s.dir.remove() }
        s.clock.advance(ms: 200 * 30_000)
        let load = Task { await s.manager.loadHistory() }
        let entered = await waitUntil(polls: 2_000, everyMs: 5) { chain.entered }
        try #require(entered)
        s.clock.advance(ms: 3 * 30_000)
        await s.manager.step()
        chain.open()
        await load.value
        let fees = try await s.chain.baseFees(heights: 0...203)
        #expect(await s.manager.policyBaseFees == Array(fees[101...203]))
        try await s.store.close()
    }

    /// The worker's ticks keep the epoch's rate, but a head can lag: a tick sees the last tick's
    /// head again, the next one a head two or three heights on; a tick finds no head at all. The
    /// policy learns every height's base fee once and in order: a head seen already adds nothing,
    /// and the heights between two ticks are asked for (only those). With `missedHeightsMax` 2, a
    /// gap of 3 is left out, the rest as before. A node that answers fewer base fees than asked
    /// has every gap left out: only the heads ticked are learned, none shifted onto another
    /// height. Uploads still go and settle. (Each tick asks for the head once: `headRetryWithinMs` 0.)
    @Test(arguments: [(Int64(10), false), (2, false), (10, true)])
    func eachHeightsBaseFeeIsLearnedOnceWhenHeadsLag(missedHeightsMax: Int64, short: Bool) async throws {
        var config = FilecoinGasManager.Config()
        config.missedHeightsMax = missedHeightsMax
        config.headRetryWithinMs = 0
        let lags: [Int?] = [0, 0, 1, 0, 1, 1, 0, 2, 0, nil, 0, 0, 3, 0, 0, 1, 2, 0, nil, nil, nil, 0, 1, 0]
        var chainConfig = SimulatedChain.Config()
        chainConfig.trace = .busy
        let (s, chain) = try setup(chain: chainConfig, config: config) { LateHeads($0, lags: lags, short: short) }
        defer { s.dir.remove() }
        try await fund(s, "u1", 1_000)
        try await queue(s, ["a", "b", "c"], priority: .high)
        await s.run(epochs: lags.count)
        // Heads seen, in order (- : none): 1 2 2 4 4 5 7 6 9 - 11 12 10 14 15 15 15 18 - - - 22 22 24.
        // Asked: 3, 6, 8, 10, 13, 16...17, 19...21, 23.
        var expected: [ClosedRange<Int64>] = [3...3, 6...6, 8...8, 10...10, 13...13, 16...17, 19...21, 23...23]
        if missedHeightsMax == 2 { expected.removeAll { $0 == 19...21 } }
        #expect(chain.heightsAsked == expected)
        var heights = Array(Int64(1)...24)
        if missedHeightsMax == 2 { heights.removeAll { (19...21).contains($0) } }
        if short { heights.removeAll { h in expected.contains { $0.contains(h) } } }
        let fees = try await s.chain.baseFees(heights: 0...24)
        #expect(await s.manager.policyBaseFees == heights.map { fees[Int($0)] })
        for id in ["a", "b", "c"] { #expect(try await s.store.upload(uploadId: id)?.status == .confirmed) }
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }

    /// The history at start (`loadHistory`, model mode) comes while steps run. Asked after five
    /// ticks, it goes before their heights and does not repeat them; asked before any tick, the
    /// first tick at the same head adds nothing, and the next height comes after it.
    @Test(arguments: [true, false])
    func theHistoryAtStartAndTheTicksGiveEachHeightOnce(ticksFirst: Bool) async throws {
        var config = FilecoinGasManager.Config()
        var model = BatchPolicy.ModelConfig()
        model.historyAtStartEpochs = 100
        config.policy.model = model
        let s = try setup(config: config)
        defer { s.dir.remove() }
        s.clock.advance(ms: 200 * 30_000)
        if ticksFirst {
            await s.run(epochs: 5)
            await s.manager.loadHistory()
        } else {
            await s.manager.loadHistory()
            await s.manager.step()
            await s.run(epochs: 5)
        }
        // Heads 201...205 ticked after the history (106...205 asked at head 205), or the
        // history at head 200 (101...200) and then heads 200...205.
        let fees = try await s.chain.baseFees(heights: 0...205)
        let from = ticksFirst ? 106 : 101
        #expect(await s.manager.policyBaseFees == Array(fees[from...205]))
        try await s.store.close()
    }
}

/// A chain whose first `failures` pushes fail after the row is written and before the chain
/// takes the message, with a retryable error or not (a call the node never got, or one it
/// refused), saying `message`. Each failure takes `failureTime` (none until set).
final class FailingPushes: ChainWrapper {
    let inner: SimulatedChain
    let retryable: Bool
    let message: String
    let failureTime = CallTime()
    private let left: Mutex<Int>

    init(_ inner: SimulatedChain, failures: Int, retryable: Bool, message: String = "push refused") {
        self.inner = inner
        self.retryable = retryable
        self.message = message
        left = Mutex(failures)
    }

    func push(_ message: ChainMessage, recordingFirst record: @Sendable (String) async throws -> Void) async throws -> String {
        let fail = left.withLock { n in
            defer { n = max(0, n - 1) }
            return n > 0
        }
        return try await inner.push(message, recordingFirst: { cid in
            try await record(cid)
            if fail {
                self.failureTime.pass()
                throw ChainError(self.message, retryable: self.retryable)
            }
        })
    }
}

extension GasManagerTests {
    /// A high-priority upload has one tick before its deadline. When that tick's head call
    /// fails, the last head seen stands in (if a tick saw it at most `headStandInTicks` ago, to
    /// the nearest tick), so the upload goes before its deadline, priced at that head's base fee.
    /// With no stand-in, or one too old, the tick sends nothing and the deadline is missed. A
    /// tick that wakes `lateMs` after its time (a wall clock's) counts the head's age in ticks
    /// all the same: 100 ms late, two ticks; 20 s late, three. (Each tick asks for the head once:
    /// `headRetryWithinMs` 0.)
    @Test(arguments: [(Int64(2), 0, Int64(0), true), (0, 0, 0, false), (2, 1, 0, true), (1, 1, 0, false), (2, 1, 100, true),
                      (2, 1, 20_000, false)])
    func anUploadAtItsDeadlineGoesWhenTheHeadCallFails(standInTicks: Int64, failedBefore: Int, lateMs: Int64, sent: Bool)
    async throws {
        var config = FilecoinGasManager.Config()
        config.headStandInTicks = standInTicks
        config.headRetryWithinMs = 0
        let lags: [Int?] = [0] + Array(repeating: nil, count: failedBefore + 1) + [0]
        let (s, _) = try setup(config: config) { LateHeads($0, lags: lags) }
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        await s.run(epochs: 1 + failedBefore)  // a head seen at height 1, then failedBefore failed calls
        let seen = try await s.chain.baseFees(heights: 1...1)[0]
        try await queue(s, ["h"], priority: .high)
        let deadline = s.clock.nowMs + 60_000
        s.clock.advance(ms: lateMs)
        await s.run(epochs: 1)  // its last tick before the deadline; the head call fails
        let txs = try await s.store.gasTransactions(sinceMs: 0, limit: 10)
        if sent {
            #expect(txs.count == 1)
            #expect(txs.first.map { $0.createdAtMs < deadline && $0.baseFee == seen && $0.uploadIds == ["h"] } == true)
        } else {
            #expect(txs.isEmpty)
        }
        await s.run(epochs: 8)
        #expect(try await s.store.upload(uploadId: "h")?.status == .confirmed)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }

    /// A head call that fails soon after the tick began is asked once more in the same tick: at
    /// an upload's last tick before its deadline, the second answer prices it, and the policy
    /// learns that height. One that failed after `headRetryWithinMs` (3 s; a timeout, say) is
    /// not asked again, nor any with the retry off (0): the last head seen stands in. The
    /// upload goes before its deadline either way.
    @Test(arguments: [(Int64(3_000), Int64(0), true), (3_000, 2_999, true), (3_000, 3_000, false), (0, 0, false)])
    func aHeadCallThatFailsAtOnceIsAskedAgainInTheTick(retryWithinMs: Int64, failureMs: Int64, askedAgain: Bool)
    async throws {
        var config = FilecoinGasManager.Config()
        config.headRetryWithinMs = retryWithinMs
        let (s, chain) = try setup(config: config) { LateHeads($0, lags: [0, nil, 0]) }
        defer { s.dir.remove() }
        chain.failureTime.set(failureMs, on: s.clock)
        try await fund(s, "u1", 100)
        await s.run(epochs: 1)  // a head seen at height 1
        let seen = try #require(chain.headCalls.last)
        try await queue(s, ["h"], priority: .high)
        let deadline = s.clock.nowMs + 60_000
        await s.run(epochs: 1)  // its last tick before the deadline; the first head call fails
        #expect(chain.headCalls.calls == (askedAgain ? 3 : 2))
        let priced = askedAgain ? try #require(chain.headCalls.last) : seen
        #expect(priced.height == seen.height + (askedAgain ? 1 : 0))
        let txs = try await s.store.gasTransactions(sinceMs: 0, limit: 10)
        #expect(txs.count == 1)
        #expect(txs.first.map { $0.createdAtMs < deadline && $0.baseFee == priced.baseFee && $0.uploadIds == ["h"] } == true)
        #expect(await s.manager.policyBaseFees.count == (askedAgain ? 2 : 1))
        await s.run(epochs: 8)
        #expect(try await s.store.upload(uploadId: "h")?.status == .confirmed)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }

    /// A push that fails at an upload's last tick before its deadline, with an error that may
    /// pass if asked again, is tried again at once (its next attempt, in the same tick) rather
    /// than after the backoff, which would miss the deadline; and once more if that fails too
    /// (`retryPassesPerTick`, 2), then no more in that tick. One refused for good waits for the
    /// backoff as any failed attempt. A failed call that takes time (a wall clock moves on
    /// during it) is tried again all the same: the retry is due after the tick began.
    @Test(arguments: [(1, true, Int64(0), 2), (1, false, 0, 1), (1, true, 250, 2), (2, true, 250, 3), (3, true, 0, 3)])
    func aPushThatFailsAtTheDeadlineIsTriedAgainAtOnce(failures: Int, retryable: Bool, callMs: Int64, pushesInTick: Int)
    async throws {
        let (s, chain) = try setup { FailingPushes($0, failures: failures, retryable: retryable) }
        defer { s.dir.remove() }
        chain.failureTime.set(callMs, on: s.clock)
        try await fund(s, "u1", 100)
        await s.run(epochs: 1)
        try await queue(s, ["h"], priority: .high)
        let deadline = s.clock.nowMs + 60_000
        await s.run(epochs: 1)
        let txs = try await s.store.gasTransactions(sinceMs: 0, limit: 10).sorted { $0.attempt < $1.attempt }
        #expect(txs.map(\.attempt) == Array(1...pushesInTick))
        #expect(txs.allSatisfy { $0.createdAtMs < deadline })
        let failed = min(failures, pushesInTick)
        #expect(txs.map(\.status) == Array(repeating: .unsent, count: failed) + Array(repeating: .pending, count: pushesInTick - failed))
        await s.run(epochs: 8)
        #expect(try await s.store.upload(uploadId: "h")?.status == .confirmed)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }
}

extension GasManagerTests {
    /// A push that fails a few ticks before an upload's deadline, with an error that may pass,
    /// has its next attempt due no later than the last tick before that deadline, whatever the
    /// backoff. Here the deadline is 90 s (3 ticks): pushed at once and failed, tried again at
    /// the next tick (the backoff, 15 to 30 s) and failed, the third attempt's backoff (30 to
    /// 60 s) would reach the tick at the deadline; it goes at the tick before, and lands. Until
    /// 2026-12-04 it waited the backoff, and the upload went after its deadline (in a day of
    /// `simulate` with 20% of calls failing, 6 of its 15 misses were this). One refused for good
    /// waits the backoff: asking again would not help.
    @Test(arguments: [true, false])
    func aPushThatFailsTwoTicksBeforeTheDeadlineIsTriedAgainBeforeIt(retryable: Bool) async throws {
        var config = FilecoinGasManager.Config()
        config.policy.deadlineMs[.high] = 90_000
        let (s, _) = try setup(config: config) { FailingPushes($0, failures: 2, retryable: retryable) }
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        await s.run(epochs: 1)
        try await queue(s, ["h"], priority: .high)
        let start = s.clock.nowMs
        let deadline = start + 90_000
        _ = try await s.manager.processNow()  // attempt 1 fails
        await s.run(epochs: 1)  // attempt 2 fails
        await s.run(epochs: 1)  // the last tick before the deadline
        let txs = try await s.store.gasTransactions(sinceMs: 0, limit: 10).sorted { $0.attempt < $1.attempt }
        if retryable {
            #expect(txs.map(\.attempt) == [1, 2, 3])
            #expect(txs.map(\.status) == [.unsent, .unsent, .pending])
            #expect(txs.map(\.createdAtMs) == [start, start + 30_000, start + 60_000])
            #expect(txs.allSatisfy { $0.createdAtMs < deadline })
        } else {
            #expect(txs.map(\.attempt) == [1, 2])
        }
        await s.run(epochs: 12)
        #expect(try await s.store.upload(uploadId: "h")?.status == .confirmed)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }
}

extension GasManagerTests {
    /// An upload whose every push the node refuses, with an error of 400 "é" (800 bytes) and
    /// control characters, is refunded after its attempts: the reason quoting the error is fitted
    /// to the ledger's text rules (500 bytes at most, no control character), so the release is
    /// not refused and the hold does not stay.
    @Test func anUploadRefusedWithAnOddErrorIsRefunded() async throws {
        let odd = "refused:\r\u{1B}[0m " + String(repeating: "é", count: 400)
        let (s, _) = try setup { FailingPushes($0, failures: 100, retryable: false, message: odd) }
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        try await queue(s, ["h"], priority: .high)
        await s.run(epochs: 60)
        let u = try #require(try await s.store.upload(uploadId: "h"))
        #expect(u.status == .refunded)
        let reason = try #require(u.failureReason)
        #expect(reason.hasPrefix("failed after 5 attempts: push failed: refused:  [0m éé") && reason.utf8.count <= 500)
        let b = try await s.store.balance(userId: "u1")
        #expect((b.balance, b.reserved, b.totalSpent) == (100, 0, 0))
        let txs = try await s.store.gasTransactions(sinceMs: 0, limit: 20)
        #expect(txs.count == 5 && txs.allSatisfy { $0.status == .unsent && ($0.failureReason?.utf8.count ?? 0) <= 500 })
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }
}

/// A chain whose head call takes `headTime` (none until set), as a slow node's does.
final class SlowHeads: ChainWrapper {
    let inner: SimulatedChain
    let headTime = CallTime()

    init(_ inner: SimulatedChain) { self.inner = inner }

    func head() async throws -> ChainHead {
        headTime.pass()
        return try await inner.head()
    }
}

extension GasManagerTests {
    /// Ticks keep a 30 s grid and each head call takes 2 s. A high-priority upload queued as the
    /// first tick's head comes (its deadline 60 s on: 2 s into the third tick) goes at the second
    /// tick, decided 2 s into it; at the third, its decision would come as the deadline passes.
    /// The policy is given the time it decides at, not the time the tick began.
    @Test func anUploadGoesBeforeItsDeadlineWhenTheHeadCallIsSlow() async throws {
        let (s, chain) = try setup { SlowHeads($0) }
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        chain.headTime.set(2_000, on: s.clock)
        await s.run(epochs: 1)
        try await queue(s, ["h"], priority: .high)
        let deadline = s.clock.nowMs + 60_000
        for _ in 0..<10 {
            s.clock.advance(ms: 30_000 - 2_000)
            await s.manager.step()
        }
        let txs = try await s.store.gasTransactions(sinceMs: 0, limit: 10)
        #expect(txs.count == 1)
        #expect(txs.first.map { $0.createdAtMs < deadline && $0.uploadIds == ["h"] } == true)
        #expect(try await s.store.upload(uploadId: "h")?.status == .confirmed)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }

    /// Head calls take 1 s, then 0 s, then 2 s, ticks on a 30 s grid. A high-priority upload
    /// queued as the first tick's head comes is due 1 s into the third tick. The second tick
    /// decides at its start, 31 s before the deadline: more than a tick, but the third tick's
    /// decision may come as late in its tick as the first's did (1 s, the longest of the last
    /// ticks'), so the upload goes at the second. The third decides at 2 s, after the deadline.
    /// With `decisionDelaysKept` 0 (no delay kept), it waits and misses it.
    @Test(arguments: [(20, true), (0, false)])
    func anUploadGoesBeforeItsDeadlineWhenTheNextHeadCallIsSlower(delaysKept: Int, beforeDeadline: Bool) async throws {
        var config = FilecoinGasManager.Config()
        config.decisionDelaysKept = delaysKept
        let (s, chain) = try setup(config: config) { SlowHeads($0) }
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        chain.headTime.set(1_000, on: s.clock)
        await s.manager.step()
        try await queue(s, ["h"], priority: .high)
        let deadline = s.clock.nowMs + 60_000
        chain.headTime.set(0, on: s.clock)
        s.clock.advance(ms: 30_000 - 1_000)
        await s.manager.step()
        chain.headTime.set(2_000, on: s.clock)
        var untilNextTickMs: Int64 = 30_000
        for _ in 0..<10 {
            s.clock.advance(ms: untilNextTickMs)
            await s.manager.step()
            untilNextTickMs = 30_000 - 2_000
        }
        let txs = try await s.store.gasTransactions(sinceMs: 0, limit: 10)
        #expect(txs.count == 1)
        #expect(txs.first.map { ($0.createdAtMs < deadline) == beforeDeadline && $0.uploadIds == ["h"] } == true)
        #expect(try await s.store.upload(uploadId: "h")?.status == .confirmed)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }
}
