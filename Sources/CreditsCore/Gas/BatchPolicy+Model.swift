import Foundation

/// `BatchPolicy`'s model mode (`Config.model`): the rules give way to a model of the market fitted
/// to the base fees seen (`FeeModel`) and what waiting is worth under it (`WaitValues`), the port
/// of `scripts/model-policy --fitted`. At each tick, once the model is fitted:
/// - Deadline: an upload whose deadline comes at or before the next tick goes now, and with it
///   the riders (below) that fit in the room left in its last message.
/// - Ride: an upload rides a message that goes when the base fee is at or below what waiting is
///   worth to it (the gain: that worth less the base fee), most gain first.
/// - Open: then messages of the riders left, `itemsPerBatchMax` at most, most gain first, go one
///   after another while each one's gains, in per-upload gas, add up to `openPermille`/1000 of a
///   message's fixed gas (at a high rate many uploads may gain at once).
/// Until the model has `fitEpochsMin` base fees to fit (a day by default: with less, it has seen
/// no spike end and would wait into the first ones), the rules decide. It is fitted again every
/// `refitTicks` heights learned (a tick that sees no new height learns nothing:
/// `tick(newHeight:)`). `q`, the chance of a message to ride in an epoch, is the share of heights
/// learned after which a high-priority upload had been queued (each sends one within two
/// ticks), at most `messageChanceMaxPermille`/1000.
extension BatchPolicy {
    public struct ModelConfig: Sendable, Equatable {
        /// The message's gas, for the two shares below.
        public var gas: BatchGasModel = .addPieces
        /// An upload still waiting at its deadline goes with a message of its own: it counts this
        /// share (‰) of a message's fixed gas more.
        public var alonePermille = 250
        /// Riders' gains, as a share (‰) of a message's fixed gas, that open a message.
        public var openPermille = 1_500
        /// q's ceiling (‰). The fitted model is a Markov chain of the base fee alone, with
        /// independent noise; the chain's base fee moves more smoothly (it follows demand). The
        /// more often the program thinks an upload can ride, the deeper the dips it waits for, and
        /// past about 0.35 it waits for dips that do not come and pays its deadline inside the
        /// next spike. At 600 uploads an hour (q about 0.63), spiky pre-nv28, seed 1, cost 1.276
        /// times the hindsight schedule; with q at 0.2, 0.25, 0.3, 0.35, 0.4: 1.071, 1.062, 1.054,
        /// 1.045, 1.202. At 120 an hour q is about 0.18, under the ceiling.
        public var messageChanceMaxPermille = 250
        /// Base fees kept for the fit (8 days).
        public var historyEpochs = 8 * 2_880
        /// Base fees needed before the first fit; the rules decide until then.
        public var fitEpochsMin = 2_880
        public var refitTicks = 720
        /// At start (`serve`), base fees of this many recent epochs asked from the chain, so that
        /// the model decides from the first tick (0: none; the rules then decide for a day).
        public var historyAtStartEpochs = 2_880
        /// Grid points of the level, over -1.5...5 in log10 around the market's level (0.01 apart).
        public var points = 651

        public init() {}

        /// `alonePermille` of a message's fixed gas, in per-upload gas: `WaitValues`'s `alone`.
        public var alone: Double {
            Double(alonePermille) / 1_000 * Double(gas.fixedGas) / Double(gas.perItemGas)
        }

        func validate() throws(CreditsError) {
            if alonePermille < 0 || alonePermille > 100_000 { throw .validation("model.alonePermille", "must be 0...100000") }
            if openPermille < 0 || openPermille > 100_000 { throw .validation("model.openPermille", "must be 0...100000") }
            if fitEpochsMin < FeeModel.fitEpochsMin || fitEpochsMin > historyEpochs {
                throw .validation("model.fitEpochsMin", "must be between \(FeeModel.fitEpochsMin) and historyEpochs")
            }
            if historyEpochs > 100_000 { throw .validation("model.historyEpochs", "must be at most 100000") }
            if refitTicks < 1 { throw .validation("model.refitTicks", "must be at least 1") }
            if historyAtStartEpochs < 0 || historyAtStartEpochs > historyEpochs {
                throw .validation("model.historyAtStartEpochs", "must be between 0 and historyEpochs")
            }
            if points < 11 || points > 5_001 { throw .validation("model.points", "must be 11...5001") }
            if messageChanceMaxPermille < 1 || messageChanceMaxPermille > 1_000 {
                throw .validation("model.messageChanceMaxPermille", "must be 1...1000")
            }
        }
    }

    struct Market: Sendable {
        /// log10 of the base fees seen, oldest first.
        var logs: [Double] = []
        var values: WaitValues?
        /// The quiet rule's stopping rule for `values.model`, made when first needed.
        var stopping: StoppingRule?
        var ticksSinceFit = 0
        /// Epochs the current climb has lasted (0: none).
        var climb = 0
        var ticks = 0
        var highTicks = 0
        var highSinceTick = false

        mutating func remember(_ baseFees: [Int128], keeping: Int) {
            logs += baseFees.suffix(keeping).map(Self.level)
            if logs.count > keeping { logs.removeFirst(logs.count - keeping) }
        }

        /// Base fees from before those remembered so far (oldest first).
        mutating func rememberEarlier(_ baseFees: [Int128], keeping: Int) {
            logs = Array((baseFees.suffix(keeping).map(Self.level) + logs).suffix(keeping))
        }

        static func level(_ baseFee: Int128) -> Double { log10(Double(max(1, baseFee))) }

        /// q: a fifth before any tick, then the share of ticks with a high-priority upload, at
        /// most `maxPermille`/1000.
        func messageChance(maxPermille: Int) -> Double {
            min((Double(highTicks) + 1) / (Double(ticks) + 5), Double(maxPermille) / 1_000)
        }
    }

    /// The model mode learns a height's base fee: the fit's history, q's count, the refit, and
    /// the climb (nothing in rule mode).
    mutating func observeInModel(_ baseFee: Int128) {
        guard let settings = config.model, var m = market else { return }
        defer { market = m }
        let log = Market.level(baseFee)
        let previous = m.logs.last
        m.remember([baseFee], keeping: settings.historyEpochs)
        m.ticks += 1
        if m.highSinceTick { m.highTicks += 1 }
        m.highSinceTick = false
        m.ticksSinceFit += 1
        fitIfDue(&m, settings)
        guard let values = m.values else { return }
        if let previous, log - previous >= values.model.climbRise {
            m.climb = min(m.climb + 1, values.states - 1)
        } else {
            m.climb = 0
        }
    }

    /// Fits the model when it has none and enough base fees (from ticks, or remembered at start),
    /// or again after `refitTicks` heights.
    func fitIfDue(_ m: inout Market, _ settings: ModelConfig) {
        guard m.values == nil ? m.logs.count >= settings.fitEpochsMin : m.ticksSinceFit >= settings.refitTicks,
              let model = FeeModel.fit(logs: m.logs) else { return }
        let ticksMax = config.deadlineMs.values.max().map { Int(($0 + config.tickMs - 1) / config.tickMs) } ?? 2
        m.values = WaitValues(model: model, messageChance: m.messageChance(maxPermille: settings.messageChanceMaxPermille),
                              alone: settings.alone, epochsMax: max(2, ticksMax), points: settings.points)
        m.ticksSinceFit = 0
        m.stopping = nil
    }

    /// The quiet rule's decision in the model mode, once fitted: whether the uploads left waiting
    /// go now, by the optimal stopping rule for the earliest deadline's epochs left (they go
    /// together, in as few messages as hold them, which nothing else will join). Nil in rule mode
    /// (no `market`) or before the first fit (the eight-hour median decides then).
    mutating func quietGoesInModel(nowMs: Int64, baseFee: Int128) -> Bool? {
        guard var m = market, let values = m.values, let first = waiting.first else { return nil }
        let stopping = m.stopping ?? StoppingRule(model: values.model, epochsMax: values.epochsMax, points: values.points)
        m.stopping = stopping
        market = m
        let left = Int((first.deadlineAtMs - nowMs + config.tickMs - 1) / config.tickMs)
        return stopping.go(epochsLeft: left, climb: m.climb, point: values.point(log10BaseFee: Market.level(baseFee)))
    }

    /// The model mode's decisions at this tick (after `observeInModel` of a new height); nil when
    /// in rule mode or before the first fit. A tick at a height seen already fits a model that
    /// has none yet, when the history remembered since gives it enough base fees.
    mutating func modelTick(nowMs: Int64, baseFee: Int128) -> [Batch]? {
        guard let settings = config.model, var m = market else { return nil }
        if m.values == nil {
            fitIfDue(&m, settings)
            market = m
        }
        guard let values = m.values else { return nil }
        let log = Market.level(baseFee)
        let point = values.point(log10BaseFee: log)
        let fee = values.fee(point: point)
        let tickMs = config.tickMs, climb = m.climb
        let due = waiting.prefix { $0.deadlineAtMs - nowMs <= tickMs }.count
        let riders = waiting.indices.dropFirst(due)
            .map { n in (n, values.worth(epochsLeft: Int((waiting[n].deadlineAtMs - nowMs + tickMs - 1) / tickMs),
                                         climb: climb, point: point) - fee) }
            .filter { $0.1 >= 0 }
            .sorted { ($0.1, -$0.0) > ($1.1, -$1.0) }
        let batchMax = config.itemsPerBatchMax
        // Due uploads go, with riders in the room left in their last message.
        let room = due > 0 ? (batchMax - due % batchMax) % batchMax : 0
        let deadline = Array(0..<due) + riders.prefix(room).map(\.0)
        var messages = stride(from: 0, to: deadline.count, by: batchMax).map {
            (Array(deadline[$0..<min($0 + batchMax, deadline.count)]), Reason.deadline)
        }
        // Then messages of the riders left, most gain first, each while its riders' gains open it
        // (at a high rate many uploads may gain at once).
        var rest = riders.dropFirst(room)
        while !rest.isEmpty {
            let top = rest.prefix(batchMax)
            let gains = top.reduce(0) { $0 + $1.1 }
            guard gains * Double(settings.gas.perItemGas) * 1_000 >= Double(settings.openPermille) * Double(settings.gas.fixedGas) * fee
            else { break }
            messages.append((top.map(\.0), .cheapGas))
            rest = rest.dropFirst(top.count)
        }
        let batches = messages.map { Batch(uploadIds: $0.0.map { waiting[$0].uploadId }, reason: $0.1) }
        let gone = Set(messages.flatMap(\.0))
        waiting = waiting.indices.filter { !gone.contains($0) }.map { waiting[$0] }
        return batches
    }
}
