import Foundation

/// When to send queued uploads to the chain, and in which batches. A pure state machine on an
/// injected clock: events in (`enqueue`, `tick`), batches out. No I/O, so tests run on virtual
/// time.
///
/// Rules, checked in this order at every tick (one per epoch):
/// 0. Hold: while the base fee is above the median of the last eight hours, low-priority uploads
///    sit out the rules below until their deadline is `holdGroupTicks` away (timing: they wait
///    for a cheaper hour). Medium-priority uploads sit out too while the base fee is also
///    falling (`holdFallPercent` or more below the last tick's): the decay after a spike. In a
///    volatile market a low-priority upload with k ticks left waits further, for a base fee
///    below the median by `holdVolatilityPermille`·σ·√k (σ: the last hour's per-tick swing).
///    In a market that is not volatile, low-priority uploads also wait below the median while
///    the base fee is `holdDecayPercent` below its level `holdDecayTicks` ago: a slow decay.
///    Nothing is held at a spike's first tick (rule 2b).
/// 1. Full: while `itemsPerBatchMax` uploads wait, send that many (earliest deadlines first).
/// 2. Deadline: an upload whose deadline comes at or before the next tick goes now, with as many
///    others as fit (a bigger batch saves more gas per upload).
/// 2b. Spike: in a market that is not volatile, a base fee `spikeJumpPercent` above the last
///    tick's sends everything waiting (at least `itemsPerBatchMin`): it will not be this low
///    again for hours.
/// 3. Cheap gas: with at least `cheapBatchMin` waiting, send when the base fee is at or below
///    the `cheapPercentile` of the recent base fees, the timing saving.
/// 4. Rising gas: with at least `itemsPerBatchMin` waiting, send when the base fee stands
///    `risePercent` or more above its level `riseWindowTicks` ago: waiting in a climb only costs.
/// 5. Back to the queue price: with at least `queuePriceBatchMin` waiting (0: off), send the
///    batch when the base fee is at or below the mean base fee its uploads were queued at, so
///    that waiting cost them nothing.
///
/// With `Config.model` set (the model mode, `BatchPolicy+Model.swift`), a model of the market
/// fitted to the base fees seen decides in place of these rules once it has seen enough of them.
///
/// In both modes, after them: Quiet. Once no upload has been queued for `quietMs`, nothing is
/// coming to share a message with those still waiting, so they go together rather than wait for
/// deadlines that may fall in a spike (`quietTick`): in the model mode, whatever their number,
/// when the optimal stopping rule for a message of their own says so (`StoppingRule`); in the
/// rule mode (and the model mode before its first fit), one or two, at the first tick whose base
/// fee is at or below the eight-hour median.
public struct BatchPolicy: Sendable {
    public struct Config: Sendable, Equatable {
        public var itemsPerBatchMin: Int = 3
        public var itemsPerBatchMax: Int = 20
        /// Time from queueing to submission, per priority.
        public var deadlineMs: [UploadPriority: Int64] = [.high: 60_000, .medium: 900_000, .low: 14_400_000]
        public var tickMs: Int64 = Filecoin.epochSeconds * 1_000
        /// Base fees remembered for "cheap" (one hour of epochs).
        public var historyLengthMax: Int = 120
        /// Base fees needed before "cheap" is judged at all.
        public var historyLengthMin: Int = 10
        public var cheapPercentile: Int = 20
        /// Uploads needed before cheap gas alone is worth a message. An early message adds a whole
        /// message's fixed gas (G0), while deadlines send a message every few ticks anyway, which
        /// the waiting uploads would join for g1 each: only a large batch gains (measured: 16
        /// costs less than 8 on every trace, and keeps timing savings positive).
        public var cheapBatchMin: Int = 16
        /// Rule 4 (0 turns it off): a climb of this many percent over `riseWindowTicks` sends.
        public var risePercent: Int = 0
        public var riseWindowTicks: Int = 10
        public var queuePriceBatchMin: Int = 0
        /// Rule 0 (0 turns it off): while the base fee stands above this percent of the median
        /// of the last `holdReferenceEpochs`, low-priority uploads are held back, unless their
        /// deadline is `holdGroupTicks` ticks away or less.
        public var holdAbovePercent: Int = 100
        /// Eight hours of epochs: longer than a low-priority deadline, so the median is the
        /// market's level rather than the last few hours' swing.
        public var holdReferenceEpochs: Int = 960
        /// Held uploads this close to their deadline join batches again, so that they go
        /// together rather than one message each (at least 1, so the deadline rule sees them).
        public var holdGroupTicks: Int = 10
        /// Rule 0 for medium priority (0 turns it off): above the median, a base fee at least this
        /// many percent below the last tick's holds medium-priority uploads as well. A base fee
        /// above its level and falling keeps falling (it returns to its level); 1% is above
        /// calm demand's noise (at most 0.5% a tick under pre-nv28), so a calm market holds
        /// nothing. Measured (seeds 1–8, before the volatile-market hold): spiky 1.215 → 1.119
        /// (FIP-0115) and 1.160 → 1.115 (pre-nv28) actual over hindsight, calm and busy unchanged
        /// within 0.002.
        public var holdFallPercent: Int = 1
        /// Rule 0 in a volatile market (0 turns it off): while the base fee's per-tick swing σ
        /// (standard deviation of its log change over the last `historyLengthMax` ticks) is at
        /// least `holdVolatilityMinPermille`, a low-priority upload with k ticks left is held
        /// unless the base fee is at or below median·exp(−c·σ·√k), c = this / 1000. Optimal
        /// stopping with mean reversion sends at a reservation price that falls further below
        /// the market's level the more time is left (scripts/online-bound: 0.38× the steady fee
        /// with 4 hours left on busy FIP-0115); 0.3 rather than the ~0.57 that fits it, because
        /// an upload held to its deadline pays for its own message's fixed gas too.
        public var holdVolatilityPermille: Int = 300
        /// 1.5% a tick: FIP-0115 markets swing 2–9%, pre-nv28 ones 0.3–1.1% (where waiting for a
        /// dip cost more in messages than it saved: ratio 1.003 → 1.008 on calm).
        public var holdVolatilityMinPermille: Int = 15
        /// Rule 0 in a slow decay (0 turns it off): in a market that is not volatile (σ below
        /// `holdVolatilityMinPermille`), a base fee at least this many percent below its level
        /// `holdDecayTicks` ago holds low-priority uploads below the median too. Under pre-nv28
        /// a spike's base fee comes down for hours (about 0.4% a tick), below the day's median
        /// long before it is down: the low-priority uploads that went at the median paid up to
        /// twice the trough their window held. 6% over 15 minutes is beyond calm noise over that
        /// time (about 1.5%) and at busy's (about 6%; 5% cost busy pre-nv28 0.001, 7% and 8%
        /// gained spiky less). Measured with `spikeJumpPercent` (seeds 1–8, actual over
        /// hindsight): spiky pre-nv28 1.114 → 1.056 (1.079 with this hold alone), the rest
        /// unchanged within 0.001.
        public var holdDecayPercent: Int = 6
        public var holdDecayTicks: Int = 30
        /// Rule 2b (0 turns it off): in a market that is not volatile, a base fee this many percent
        /// above the last tick's is a spike's first tick (calm and busy pre-nv28 move under 2% a
        /// tick; a spike 12.5%). It will climb for minutes and take hours to come down, so nothing
        /// is held and everything waiting goes now (with at least `itemsPerBatchMin`).
        public var spikeJumpPercent: Int = 5
        /// Quiet (both modes; 0 turns it off): once no upload has been queued for this long, those
        /// waiting go together (`quietTick`): in the model mode when its stopping rule says so,
        /// in the rule mode one or two at the first base fee at or below the median of the last
        /// `holdReferenceEpochs`. Without it, an upload left alone when arrivals stop waits for
        /// its deadline (the rules send fewer than `itemsPerBatchMin` only at a deadline, the
        /// model mode seldom otherwise): 4 hours for low priority, long enough to meet a spike
        /// (3 hours of spiky pre-nv28 at 30 uploads an hour, seed 75228: the last upload paid 206
        /// times the base fee it could have had, and the run 3.74 times the hindsight schedule;
        /// with the median, 1.082; with the stopping rule, 1.073). The median is for one or two
        /// only: at the end of a day at 120 an hour, sending the last few at the median cost more
        /// than their deadlines (the model mode before its stopping rule, spiky pre-nv28, seed 1:
        /// 1.0546 → 1.0567).
        public var quietMs: Int64 = 3_600_000
        /// `quietMs` at most (30 days); `serve --quiet-minutes` takes the same bound in minutes.
        public static let quietMsMax: Int64 = 30 * 86_400_000
        /// Uploads waiting at most; beyond it `enqueue` refuses.
        public var queueLengthMax: Int = 100_000
        /// Decide with a model of the market fitted to the base fees seen, in place of rules 0 to
        /// 5, once it has seen enough of them (see `BatchPolicy+Model.swift`); nil: the rules.
        public var model: ModelConfig?

        public init() {}

        /// Checks the relations between the limits; `gas` caps the batch size.
        public func validate(gas: BatchGasModel) throws(CreditsError) {
            if itemsPerBatchMin < 1 || itemsPerBatchMin > itemsPerBatchMax {
                throw .validation("itemsPerBatchMin", "must be between 1 and itemsPerBatchMax")
            }
            if itemsPerBatchMax > gas.itemsPerMessageMax {
                throw .validation("itemsPerBatchMax", "must keep a message under BlockGasLimit/4 (\(gas.itemsPerMessageMax) items)")
            }
            for p in UploadPriority.allCases where (deadlineMs[p] ?? 0) < 2 * tickMs {
                throw .validation("deadlineMs.\(p.rawValue)", "must be at least two ticks (\(2 * tickMs) ms)")
            }
            // Until 2026-12-05 the next four went unchecked: a negative count or percent read as
            // "off", and --history-epochs or --rise-percent near Int.max trapped on overflow.
            if historyLengthMax < 1 || historyLengthMax > 100_000 { throw .validation("historyLengthMax", "must be 1...100000") }
            if cheapBatchMin < 0 || cheapBatchMin > 100_000 { throw .validation("cheapBatchMin", "must be 0...100000") }
            if queuePriceBatchMin < 0 || queuePriceBatchMin > 100_000 { throw .validation("queuePriceBatchMin", "must be 0...100000 (0: off)") }
            if risePercent < 0 || risePercent > 1_000 { throw .validation("risePercent", "must be 0...1000 (0: off)") }
            if risePercent > 0, riseWindowTicks < 1 || riseWindowTicks > historyLengthMax {
                throw .validation("riseWindowTicks", "must be 1...historyLengthMax while risePercent is on")
            }
            if cheapPercentile < 0 || cheapPercentile > 100 { throw .validation("cheapPercentile", "must be 0...100") }
            if holdAbovePercent < 0 || holdAbovePercent > 1_000 { throw .validation("holdAbovePercent", "must be 0...1000") }
            if holdReferenceEpochs < 1 || holdReferenceEpochs > 100_000 { throw .validation("holdReferenceEpochs", "must be 1...100000") }
            if holdGroupTicks < 1 || holdGroupTicks > 100_000 { throw .validation("holdGroupTicks", "must be 1...100000") }
            if holdFallPercent < 0 || holdFallPercent > 99 { throw .validation("holdFallPercent", "must be 0...99") }
            if holdVolatilityPermille < 0 || holdVolatilityPermille > 10_000 { throw .validation("holdVolatilityPermille", "must be 0...10000") }
            if holdVolatilityMinPermille < 1 || holdVolatilityMinPermille > 1_000 { throw .validation("holdVolatilityMinPermille", "must be 1...1000") }
            if holdDecayPercent < 0 || holdDecayPercent > 99 { throw .validation("holdDecayPercent", "must be 0...99") }
            if holdDecayTicks < 1 || holdDecayTicks > historyLengthMax { throw .validation("holdDecayTicks", "must be 1...historyLengthMax") }
            if spikeJumpPercent < 0 || spikeJumpPercent > 1_000 { throw .validation("spikeJumpPercent", "must be 0...1000") }
            if quietMs < 0 || quietMs > Self.quietMsMax { throw .validation("quietMs", "must be 0...\(Self.quietMsMax) (30 days)") }
            if historyLengthMin < 1 || historyLengthMin > historyLengthMax {
                throw .validation("historyLengthMin", "must be between 1 and historyLengthMax")
            }
            try model?.validate()
        }
    }

    public enum Reason: String, Sendable, Equatable, Codable {
        case full, deadline, spike, cheapGas = "cheap_gas", rising, queuePrice = "queue_price", quiet, forced
    }

    public struct Batch: Sendable, Equatable {
        public var uploadIds: [String]
        public var reason: Reason
    }

    struct Waiting: Sendable, Equatable {
        var uploadId: String
        var queuedAtMs: Int64
        var deadlineAtMs: Int64
        /// The base fee of the first tick after it was queued, when it could have gone out at
        /// once (0: no tick yet).
        var queuedBaseFee: Int128 = 0
        var priority: UploadPriority = .medium
    }

    public let config: Config
    var waiting: [Waiting] = []
    private(set) var history: [Int128] = []
    /// When the last upload was queued (nil: none yet), for the quiet rule.
    private(set) var lastQueuedAtMs: Int64?
    /// The model mode's state (nil in rule mode).
    var market: Market?

    public init(config: Config = Config()) {
        self.config = config
        if config.model != nil { market = Market() }
    }

    public var queueLength: Int { waiting.count }
    /// The uploads waiting, by id.
    public var waitingUploadIds: Set<String> { Set(waiting.map(\.uploadId)) }

    /// Drops the waiting uploads `gone` names (another instance sent them); returns their ids.
    @discardableResult
    public mutating func forget(_ gone: Set<String>) -> [String] {
        let dropped = waiting.filter { gone.contains($0.uploadId) }.map(\.uploadId)
        if !dropped.isEmpty { waiting.removeAll { gone.contains($0.uploadId) } }
        return dropped
    }

    /// Adds an upload; false when the queue is full (the caller retries later).
    public mutating func enqueue(uploadId: String, priority: UploadPriority, queuedAtMs: Int64) -> Bool {
        if waiting.count >= config.queueLengthMax { return false }
        if priority == .high { market?.highSinceTick = true }
        let deadline = queuedAtMs + (config.deadlineMs[priority] ?? config.deadlineMs[.medium]!)
        waiting.append(Waiting(uploadId: uploadId, queuedAtMs: queuedAtMs, deadlineAtMs: deadline, priority: priority))
        lastQueuedAtMs = max(lastQueuedAtMs ?? queuedAtMs, queuedAtMs)
        return true
    }

    /// Called once per tick with the chain's current base fee; returns the batches to send now.
    ///
    /// The policy learns one base fee per height (its history, the model's fit and climb). With
    /// `newHeight` false the head is the one the last tick saw (its next block came late, or
    /// none came), so its base fee is not taken a second time: deadlines are met as usual, and
    /// nothing is learned. Heights the ticks skipped go in first through `observe(missed:)`.
    public mutating func tick(nowMs: Int64, baseFee: Int128, newHeight: Bool = true) -> [Batch] {
        for i in waiting.indices where waiting[i].queuedBaseFee == 0 { waiting[i].queuedBaseFee = baseFee }
        waiting.sort { ($0.deadlineAtMs, $0.queuedAtMs, $0.uploadId) < ($1.deadlineAtMs, $1.queuedAtMs, $1.uploadId) }
        if newHeight { observeInModel(baseFee) }
        let out = (modelTick(nowMs: nowMs, baseFee: baseFee) ?? ruleTick(nowMs: nowMs, baseFee: baseFee))
            + quietTick(nowMs: nowMs, baseFee: baseFee)
        if newHeight { remember(baseFee) }
        return out
    }

    /// Base fees of heights no tick saw (the head moved on by more than one height between two
    /// ticks), oldest first, before the tick of the height after them: the history and the model
    /// take them as if ticked; nothing is decided.
    public mutating func observe(missed baseFees: [Int128]) {
        for fee in baseFees {
            observeInModel(fee)
            remember(fee)
        }
    }

    /// The chain's base fees from before the first tick (oldest first: its recent history), for
    /// the rules' history and the model's fit. They go before the base fees ticks have brought,
    /// so they may come after the first ticks (while a node is still being asked for them).
    public mutating func remember(baseFees: [Int128]) {
        history = Array((baseFees + history).suffix(historyKept))
        market?.rememberEarlier(baseFees, keeping: config.model?.historyEpochs ?? 0)
    }

    /// The base fees the policy has learned, one per height, oldest first: the last
    /// `max(historyLengthMax, holdReferenceEpochs)` of them (the model keeps more for its fit).
    public var baseFeesLearned: [Int128] { history }

    /// Whether the model mode has a fitted model to decide with (false in rule mode).
    public var isModelFitted: Bool { market?.values != nil }

    private mutating func remember(_ baseFee: Int128) {
        history.append(baseFee)
        if history.count > historyKept { history.removeFirst(history.count - historyKept) }
    }

    private var historyKept: Int { max(config.historyLengthMax, usesReferenceMedian ? config.holdReferenceEpochs : 0) }

    /// Rules 0 to 5.
    private mutating func ruleTick(nowMs: Int64, baseFee: Int128) -> [Batch] {
        var out: [Batch] = []
        // Rule 0: held uploads sit out this tick's rules and are back in the queue after it. A
        // spike's first tick holds nothing (rule 2b).
        let sigma = sigma()
        let spike = isSpikeStart(baseFee, sigma: sigma)
        let held = spike ? [] : heldBack(nowMs: nowMs, baseFee: baseFee, sigma: sigma)
        defer { waiting += held }
        while waiting.count >= config.itemsPerBatchMax {
            out.append(take(config.itemsPerBatchMax, .full))
        }
        while let first = waiting.first, first.deadlineAtMs - nowMs <= config.tickMs {
            out.append(take(config.itemsPerBatchMax, .deadline))
        }
        if spike, waiting.count >= config.itemsPerBatchMin {
            out.append(take(config.itemsPerBatchMax, .spike))
        }
        if waiting.count >= max(config.itemsPerBatchMin, config.cheapBatchMin), isCheap(baseFee) {
            out.append(take(config.itemsPerBatchMax, .cheapGas))
        }
        if waiting.count >= config.itemsPerBatchMin, isRising(baseFee) {
            out.append(take(config.itemsPerBatchMax, .rising))
        }
        if config.queuePriceBatchMin > 0, waiting.count >= max(config.itemsPerBatchMin, config.queuePriceBatchMin) {
            let next = waiting.prefix(config.itemsPerBatchMax)
            if next.allSatisfy({ $0.queuedBaseFee > 0 }), baseFee * Int128(next.count) <= next.reduce(Int128(0), { $0 + $1.queuedBaseFee }) {
                out.append(take(config.itemsPerBatchMax, .queuePrice))
            }
        }
        return out
    }

    /// The quiet rule, after either mode's decision: once it is quiet (`isQuiet`), what still
    /// waits goes, as one message (or as few as hold it), when the model mode's stopping rule
    /// says so for the earliest deadline (`quietGoesInModel`), whatever the number; in the rule
    /// mode or before the model's first fit, one or two go at the first base fee at or below the
    /// eight-hour median (three or more are left to the rules: at the median they cost more than
    /// at their deadlines).
    private mutating func quietTick(nowMs: Int64, baseFee: Int128) -> [Batch] {
        guard isQuiet(nowMs: nowMs) else { return [] }
        if let go = quietGoesInModel(nowMs: nowMs, baseFee: baseFee) {
            guard go else { return [] }
        } else {
            guard waiting.count < config.itemsPerBatchMin, baseFee <= referenceMedian() else { return [] }
        }
        var out: [Batch] = []
        while !waiting.isEmpty { out.append(take(config.itemsPerBatchMax, .quiet)) }
        return out
    }

    /// The quiet rule's condition, but for the base fee and the number waiting: it is on, an
    /// upload waits, none has been queued for `quietMs`, and there are `historyLengthMin` base
    /// fees to take a median of.
    func isQuiet(nowMs: Int64) -> Bool {
        guard config.quietMs > 0, !waiting.isEmpty, let last = lastQueuedAtMs, history.count >= config.historyLengthMin
        else { return false }
        return nowMs - last >= config.quietMs
    }

    /// An operator's "process now": everything waiting, in batches of at most the maximum.
    public mutating func drain() -> [Batch] {
        waiting.sort { ($0.deadlineAtMs, $0.queuedAtMs, $0.uploadId) < ($1.deadlineAtMs, $1.queuedAtMs, $1.uploadId) }
        var out: [Batch] = []
        while !waiting.isEmpty { out.append(take(config.itemsPerBatchMax, .forced)) }
        return out
    }

    /// Rule 0's condition: the base fee is above `holdAbovePercent` of the recent median. Where the
    /// base fee returns to its level (calm, busy and spiky all do), a low-priority upload queued
    /// in a dear hour gains by waiting for a cheaper one within its 4 hours; in a market that
    /// climbs all day it loses.
    func holdsLowPriority(_ baseFee: Int128, median: Int128) -> Bool {
        guard config.holdAbovePercent > 0, history.count >= config.historyLengthMin else { return false }
        return baseFee * 100 > median * Int128(config.holdAbovePercent)
    }

    /// A rule that reads the eight-hour median is on (the median hold, the volatile-market hold
    /// or the quiet rule): the history then keeps `holdReferenceEpochs` base fees.
    var usesReferenceMedian: Bool { config.holdAbovePercent > 0 || config.holdVolatilityPermille > 0 || config.quietMs > 0 }

    /// The median of the last `holdReferenceEpochs` base fees (0 with none yet): the market's
    /// level for rule 0 and the quiet rule. Sorted once a tick for rule 0's two uses, and again
    /// when the quiet rule applies.
    func referenceMedian() -> Int128 {
        let sorted = history.suffix(config.holdReferenceEpochs).sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }

    /// Rule 0's medium-priority condition: the base fee is `holdFallPercent` or more below the
    /// last tick's.
    func isFalling(_ baseFee: Int128) -> Bool {
        guard config.holdFallPercent > 0, let last = history.last else { return false }
        return baseFee * 100 <= last * Int128(100 - config.holdFallPercent)
    }

    /// σ is below `holdVolatilityMinPermille`: the market is not volatile.
    func isCalm(sigma: Double) -> Bool { sigma * 1_000 < Double(config.holdVolatilityMinPermille) }

    /// Rule 2b's condition: in a market that is not volatile, the base fee is `spikeJumpPercent`
    /// or more above the last tick's. Not before `historyLengthMin` base fees: too few to tell a
    /// calm market.
    func isSpikeStart(_ baseFee: Int128, sigma: Double) -> Bool {
        guard config.spikeJumpPercent > 0, history.count >= config.historyLengthMin, let last = history.last else { return false }
        return baseFee * 100 >= last * Int128(100 + config.spikeJumpPercent) && isCalm(sigma: sigma)
    }

    /// Rule 0 in a slow decay: in a market that is not volatile, the base fee is
    /// `holdDecayPercent` or more below its level `holdDecayTicks` ago. Not before
    /// `historyLengthMin` base fees, however few ticks it looks back: too few to tell a calm market.
    func isDecaying(_ baseFee: Int128, sigma: Double) -> Bool {
        guard config.holdDecayPercent > 0, history.count >= max(config.historyLengthMin, config.holdDecayTicks),
              isCalm(sigma: sigma) else { return false }
        return baseFee * 100 <= history[history.count - config.holdDecayTicks] * Int128(100 - config.holdDecayPercent)
    }

    /// Rule 0's volatile-market hold applies: it is on, and σ has reached
    /// `holdVolatilityMinPermille` over enough base fees to tell.
    func isVolatile(sigma: Double) -> Bool {
        config.holdVolatilityPermille > 0 && history.count >= max(config.historyLengthMin, 3) && !isCalm(sigma: sigma)
    }

    /// σ: the standard deviation of the base fee's log change per tick over the last
    /// `historyLengthMax` ticks (0 with fewer than 3 base fees). A statistic of ratios of base
    /// fees, so a `Double`; no amount is.
    func sigma() -> Double {
        guard history.count >= 3 else { return 0 }
        let recent = history.suffix(config.historyLengthMax + 1).map { Double(max(1, $0)) }
        let changes = zip(recent.dropFirst(), recent).map { log($0 / $1) }
        let mean = changes.reduce(0, +) / Double(changes.count)
        return (changes.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(changes.count)).squareRoot()
    }

    /// The base fee is above median·exp(−c·σ·√k), compared in integers (parts per million).
    static func waitsForADip(_ baseFee: Int128, ticksLeft k: Int64, sigma: Double, median: Int128, permille: Int) -> Bool {
        let c = Double(permille) / 1_000
        let ppm = Int128((exp(-c * sigma * Double(max(0, k)).squareRoot()) * 1_000_000).rounded())
        return baseFee * 1_000_000 > median * ppm
    }

    /// Removes and returns the uploads rule 0 holds back this tick: low priority above the median
    /// (or, in a volatile market, above its reservation price; in a slow decay, below the median
    /// too), medium priority above the median and falling; none whose deadline is
    /// `holdGroupTicks` away or less.
    private mutating func heldBack(nowMs: Int64, baseFee: Int128, sigma: Double) -> [Waiting] {
        let median = usesReferenceMedian ? referenceMedian() : 0
        let aboveMedian = holdsLowPriority(baseFee, median: median)
        let medium = aboveMedian && isFalling(baseFee)
        let volatile = !aboveMedian && isVolatile(sigma: sigma)
        let decaying = !aboveMedian && isDecaying(baseFee, sigma: sigma)
        guard aboveMedian || volatile || decaying else { return [] }
        let horizon = nowMs + Int64(config.holdGroupTicks) * config.tickMs
        let (tickMs, permille) = (config.tickMs, config.holdVolatilityPermille)
        let isHeld = { (w: Waiting) -> Bool in
            guard w.deadlineAtMs > horizon else { return false }
            switch w.priority {
            case .low:
                guard !aboveMedian, !decaying, volatile else { return true }
                return Self.waitsForADip(baseFee, ticksLeft: (w.deadlineAtMs - nowMs) / tickMs, sigma: sigma, median: median,
                                         permille: permille)
            case .medium: return medium
            case .high: return false
            }
        }
        let held = waiting.filter(isHeld)
        waiting.removeAll(where: isHeld)
        return held
    }

    /// The base fee is at or below the configured percentile of the last `historyLengthMax`.
    func isCheap(_ baseFee: Int128) -> Bool {
        guard history.count >= config.historyLengthMin else { return false }
        let sorted = history.suffix(config.historyLengthMax).sorted()
        let index = min(sorted.count - 1, sorted.count * config.cheapPercentile / 100)
        return baseFee <= sorted[index]
    }

    /// The base fee climbed `risePercent` or more over the last `riseWindowTicks`.
    func isRising(_ baseFee: Int128) -> Bool {
        guard config.risePercent > 0, config.riseWindowTicks > 0, history.count >= config.riseWindowTicks else { return false }
        let then = history[history.count - config.riseWindowTicks]
        return baseFee * 100 >= then * Int128(100 + config.risePercent)
    }

    private mutating func take(_ n: Int, _ reason: Reason) -> Batch {
        let count = min(n, waiting.count)
        precondition(count > 0)
        let ids = waiting.prefix(count).map(\.uploadId)
        waiting.removeFirst(count)
        return Batch(uploadIds: ids, reason: reason)
    }
}
