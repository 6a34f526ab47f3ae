import CreditsChain
@testable import CreditsCore
import Foundation
import Testing

/// `FeeModel` (the fit), `WaitValues` (the dynamic program) and `BatchPolicy`'s model mode. The
/// markets are `SimulatedChain`'s, drawn with `SimulatedChain.baseFees`.
@Suite struct FeeModelTests {
    static let week = 7 * 2_880

    func logs(_ trace: SimulatedChain.Trace, _ rule: BaseFeeRule, epochs: Int = week, seed: UInt64 = 5) -> [Double] {
        var config = SimulatedChain.Config()
        config.trace = trace
        config.rule = rule
        config.seed = seed
        return SimulatedChain.baseFees(config: config, epochs: epochs).map { log10(Double($0)) }
    }

    /// log10 of the step SimulatedChain's spikes climb by (fullness 1.6), from the rule itself.
    func climbStep(_ rule: BaseFeeRule) -> Double {
        let base: Int128 = 100_000_000
        let target = Double(Filecoin.blockGasTarget * Filecoin.blocksPerTipset)
        let p20 = Int128((1.0 + 8.0 * 0.6) * 1_000_000) * ((base + 7) / 8) / 1_000_000
        let next = rule.next(base: base, gasLimitSum: Int64(1.6 * target), blocks: Filecoin.blocksPerTipset, p20Premium: p20)
        return log10(Double(next) / Double(base))
    }

    /// A week of each market: the fit finds the level the market returns to (10^8 attoFIL/gas
    /// on calm and spiky) within a factor 1.26, where spiky pre-nv28's median stands far above
    /// it (held up by the decays); on spiky the climbs' step within 2%, how often they start
    /// (0.4% of epochs) within 30% and how long they last (24.5 epochs on the mean) within 20%;
    /// on calm no climbs.
    @Test(arguments: [(SimulatedChain.Trace.spiky, BaseFeeRule.preNV28), (.spiky, .fip0115), (.calm, .preNV28)])
    func theFitFindsTheMarketsLevelAndItsClimbs(trace: SimulatedChain.Trace, rule: BaseFeeRule) throws {
        let week = logs(trace, rule)
        let model = try #require(FeeModel.fit(logs: week))
        #expect(abs(model.reference - 8) <= 0.1)
        #expect(model.pull < 0)
        if trace == .calm {
            #expect(model.climbStep == nil)
            return
        }
        if rule == .preNV28 { #expect(week.sorted()[week.count / 2] - 8 > 0.3) }
        let step = try #require(model.climbStep)
        #expect(abs(step / climbStep(rule) - 1) <= 0.02)
        #expect(abs(model.startChance / 0.004 - 1) <= 0.3)
        var lasts = 1.0, goesOn = 1.0
        for g in model.goesOn.dropFirst() {
            goesOn *= g
            lasts += goesOn
        }
        #expect(abs(lasts / 24.5 - 1) <= 0.2)
    }

    @Test func tooFewBaseFeesFitNothing() {
        #expect(FeeModel.fit(logs: Array(repeating: 8.0, count: FeeModel.fitEpochsMin - 1)) == nil)
    }

    /// A market like spiky's: climbs last 10 to 39 epochs evenly, so after j epochs one goes on
    /// with probability (39 − j)/(40 − j) from the tenth.
    func spikyModel() -> FeeModel {
        let nodes = Double(FeeModel.noiseNodes)
        let noise: [Double] = (0..<FeeModel.noiseNodes).map { n in
            let share: Double = (Double(n) + 0.5) / nodes
            return share * 0.02 - 0.01
        }
        let goesOn: [Double] = (0..<40).map { (j: Int) -> Double in j < 10 ? 1.0 : Double(39 - j) / Double(40 - j) }
        return FeeModel(reference: 0, pull: -0.03, noise: noise, climbRise: log10(1.05), climbStep: log10(1.075),
                        startChance: 0.004, goesOn: goesOn)
    }

    /// One random path of `model` over an upload's last `epochs` epochs, from log10 level
    /// `start`, `climb0` epochs into a climb (at least ten: its length is then even over
    /// climb0...39; 0: none). Each climb's length is drawn when it starts (not from the
    /// program's `goesOn`), the step outside climbs from the noise. Each epoch a message comes
    /// with probability q; `go(k, level, climb)` says whether to pay the base fee with k epochs
    /// left and it; at the last epoch it pays `alone` more.
    func walk(_ model: FeeModel, from start: Double, climb climb0: Int, epochs: Int, messageChance q: Double, alone: Double,
              states: Int, _ rng: inout SplitMix64, go: (Int, Double, Int) -> Bool) -> Double {
        var level = start, climb = climb0
        var left = climb0 > 0 ? Int(rng.next() % UInt64(40 - climb0)) : 0
        for k in stride(from: epochs, to: 1, by: -1) {
            if q >= 1 || rng.uniform() < q, go(k, level, climb) { return pow(10, level) }
            if left > 0 {
                level += model.climbStep!
                left -= 1
                climb = min(climb + 1, states - 1)
            } else {
                level = level * (1 + model.pull) + model.noise[Int(rng.next() % UInt64(model.noise.count))]
                climb = 0
                if rng.chance(ppm: 4_000) { left = 10 + Int(rng.next() % 30) }
            }
        }
        return pow(10, level) * (1 + alone)
    }

    /// The program's value against its rule run on 20,000 random paths of the market: each
    /// epoch a message comes with probability q, and the upload rides it when the base fee is at
    /// or below what waiting is worth; at the end of its window it pays `alone` more. Within 1.5%
    /// of the program, from a steady market and from a climb's twelfth epoch.
    @Test(arguments: [(0.0, 0), (0.6, 12), (1.0, 25)])
    func waitValuesAgreeWithAMonteCarloRunOfTheirRule(start: Double, climb0: Int) {
        let model = spikyModel()
        let (q, alone, epochs) = (0.2, 0.7, 30)
        let values = WaitValues(model: model, messageChance: q, alone: alone, epochsMax: epochs)
        var rng = SplitMix64(seed: 7)
        var total = 0.0
        let paths = 20_000
        for _ in 0..<paths {
            total += walk(model, from: start, climb: climb0, epochs: epochs, messageChance: q, alone: alone, states: values.states,
                          &rng) { k, level, climb in
                pow(10, level) <= values.worth(epochsLeft: k, climb: climb, point: values.point(log10BaseFee: level)) * (1 + 1e-6)
            }
        }
        let point = values.point(log10BaseFee: start)
        let fee = values.fee(point: point), worth = values.worth(epochsLeft: epochs, climb: climb0, point: point)
        let expected = q * min(fee, worth) + (1 - q) * worth
        #expect(abs(total / Double(paths) / expected - 1) <= 0.015, "Monte Carlo \(total / Double(paths)), program \(expected)")
    }

    /// The quiet rule's stopping rule (a message of its own, which can go at any epoch) run on
    /// 20,000 random paths of the market, 120 epochs: it pays what the program says it expects
    /// (`WaitValues` with a message every epoch and nothing more at the end) within 1.5%, and
    /// less than going at once, at the first base fee at or below the market's level, or at
    /// the deadline. From a steady market at the level, and from a climb's twelfth epoch.
    @Test(arguments: [(0.0, 0), (0.6, 12)])
    func theStoppingRulePaysWhatItsProgramExpects(start: Double, climb0: Int) {
        let model = spikyModel()
        let epochs = 120
        let rule = StoppingRule(model: model, epochsMax: epochs)
        let values = WaitValues(model: model, messageChance: 1, alone: 0, epochsMax: epochs)
        let paths = 20_000
        func mean(_ go: (Int, Double, Int) -> Bool) -> Double {
            var rng = SplitMix64(seed: 7)
            var total = 0.0
            for _ in 0..<paths {
                total += walk(model, from: start, climb: climb0, epochs: epochs, messageChance: 1, alone: 0, states: values.states,
                              &rng, go: go)
            }
            return total / Double(paths)
        }
        let stopping = mean { k, level, climb in rule.go(epochsLeft: k, climb: climb, point: values.point(log10BaseFee: level)) }
        let point = values.point(log10BaseFee: start)
        let expected = min(values.fee(point: point), values.worth(epochsLeft: epochs, climb: climb0, point: point))
        #expect(abs(stopping / expected - 1) <= 0.015, "Monte Carlo \(stopping), program \(expected)")
        let atOnce = mean { _, _, _ in true }, atLevel = mean { _, level, _ in level <= 0 }, atDeadline = mean { _, _, _ in false }
        #expect(stopping < atOnce && stopping < atLevel && stopping < atDeadline, "\(stopping): \(atOnce), \(atLevel), \(atDeadline)")
        #expect(rule.go(epochsLeft: 1, climb: 0, point: values.points - 1))
    }

    /// The stopping rule reads the climb too: at four times the market's level with 30 epochs
    /// left, a message goes in a climb's third epoch (it will only get dearer) and waits outside
    /// one; at a fifth of the level it goes either way, and at its last epoch whatever the fee.
    @Test func theStoppingRuleGoesInAClimbAndWaitsOutsideOne() {
        let rule = StoppingRule(model: spikyModel(), epochsMax: 30)
        let values = WaitValues(model: spikyModel(), messageChance: 1, alone: 0, epochsMax: 2)
        let dear = values.point(log10BaseFee: log10(4)), cheap = values.point(log10BaseFee: log10(0.2))
        #expect(rule.go(epochsLeft: 30, climb: 3, point: dear))
        #expect(!rule.go(epochsLeft: 30, climb: 0, point: dear))
        #expect(rule.go(epochsLeft: 30, climb: 0, point: cheap) && rule.go(epochsLeft: 30, climb: 3, point: cheap))
        #expect(rule.go(epochsLeft: 1, climb: 0, point: dear))
    }

    /// The climb states matter: at the same base fee, four times the market's level, an upload
    /// with 30 epochs left rides in a climb's third epoch (the climb goes on: it will only get
    /// dearer) and waits outside one (the base fee comes back down).
    @Test func inAClimbWaitingIsWorthMoreThanOutsideOne() {
        let values = WaitValues(model: spikyModel(), messageChance: 0.2, alone: 0.7, epochsMax: 30)
        let point = values.point(log10BaseFee: log10(4))
        #expect(values.worth(epochsLeft: 30, climb: 3, point: point) > values.fee(point: point))
        #expect(values.worth(epochsLeft: 30, climb: 0, point: point) < values.fee(point: point))
    }

    /// Spikes stack: spiky FIP-0115's seed 4 reaches 7,200 times the market's level, a climb
    /// started on the last one's decay. The grid reaches 100,000 times (until 2026-12-02 it
    /// stopped at 3,162 times: such a base fee was taken for one 2.3 times lower, and that day
    /// cost 1.166 times the hindsight schedule rather than 1.123).
    @Test func theGridReachesTheDeepestSpikes() {
        let values = WaitValues(model: spikyModel(), messageChance: 0.2, alone: 0.7, epochsMax: 2)
        for multiple in [0.05, 1.0, 7_200.0, 50_000.0] {
            let fee = values.fee(point: values.point(log10BaseFee: log10(multiple)))
            #expect(abs(fee / multiple - 1) <= 0.025, "\(multiple): \(fee)")
        }
    }

    // MARK: - The policy's model mode

    func modelPolicy(fitEpochsMin: Int = 2_880) -> BatchPolicy {
        var config = BatchPolicy.Config()
        var model = BatchPolicy.ModelConfig()
        model.fitEpochsMin = fitEpochsMin
        config.model = model
        return BatchPolicy(config: config)
    }

    /// A day of calm's market, remembered before the first tick.
    func calmDay() -> [Int128] {
        var config = SimulatedChain.Config()
        config.seed = 3
        return SimulatedChain.baseFees(config: config, epochs: 2_880)
    }

    func enqueue(_ p: inout BatchPolicy, _ ids: [String], _ priority: UploadPriority, at ms: Int64 = 0) {
        for id in ids {
            let accepted = p.enqueue(uploadId: id, priority: priority, queuedAtMs: ms)
            #expect(accepted)
        }
    }

    /// Below the market's level (10^8), a high-priority upload's deadline message takes the
    /// low-priority uploads along (waiting is worth less than this base fee); at three times the
    /// level, it goes alone and they wait.
    @Test func aDeadlineMessageTakesTheRidersAlongOnlyWhenTheBaseFeeIsLow() {
        for (fee, riders) in [(Int128(60_000_000), 4), (300_000_000, 0)] {
            var p = modelPolicy()
            p.remember(baseFees: calmDay())
            enqueue(&p, ["h"], .high)
            enqueue(&p, (0..<4).map { "l\($0)" }, .low)
            #expect(p.tick(nowMs: 0, baseFee: fee).isEmpty)  // the high-priority upload has a tick left
            let sent = p.tick(nowMs: 30_000, baseFee: fee)
            #expect(sent.count == 1 && sent.first?.reason == .deadline)
            #expect(sent.first?.uploadIds.count == 1 + riders && sent.first?.uploadIds.first == "h")
            #expect(p.queueLength == 4 - riders)
        }
    }

    /// With nothing due, a message opens when its riders' gains cover 1.5 times its fixed gas.
    /// On spiky pre-nv28 at the market's level, 25 medium-priority uploads wait (more than a
    /// batch: there is no "full" rule); at a climb's first tick (8% up) twenty of them go, as
    /// the climb will only get dearer for their 15 minutes.
    @Test func aMessageOpensWhenWhatItsRidersGainCoversItsFixedGas() {
        var config = SimulatedChain.Config()
        config.trace = .spiky
        config.seed = 3
        var p = modelPolicy()
        p.remember(baseFees: SimulatedChain.baseFees(config: config, epochs: 2_880))
        enqueue(&p, (0..<25).map { "m\($0)" }, .medium)
        #expect(p.tick(nowMs: 0, baseFee: 100_000_000).isEmpty)
        let sent = p.tick(nowMs: 30_000, baseFee: 108_000_000)
        #expect(sent.map(\.uploadIds.count) == [20] && sent.first?.reason == .cheapGas)
        #expect(p.queueLength == 5)
    }

    /// At a high rate many uploads wait out a spike together: at a climb's first tick 65 of them
    /// leave in three messages of 20 (one a tick would leave 45 to the climb), while the last 5,
    /// whose gains do not cover a message's fixed gas, wait. With a high-priority upload due, its
    /// deadline message takes 19 of them, two more messages open, and 6 wait.
    @Test func asManyMessagesOpenInATickAsTheirRidersGainsCover() {
        var config = SimulatedChain.Config()
        config.trace = .spiky
        config.seed = 3
        for high in [false, true] {
            var p = modelPolicy()
            p.remember(baseFees: SimulatedChain.baseFees(config: config, epochs: 2_880))
            enqueue(&p, (0..<65).map { "m\($0)" }, .medium)
            if high { enqueue(&p, ["h"], .high) }
            #expect(p.tick(nowMs: 0, baseFee: 100_000_000).isEmpty)
            let sent = p.tick(nowMs: 30_000, baseFee: 108_000_000)
            if high {
                #expect(sent.map(\.uploadIds.count) == [20, 20, 20] && p.queueLength == 6)
                #expect(sent.first?.reason == .deadline && sent.first?.uploadIds.first == "h")
                #expect(sent.dropFirst().allSatisfy { $0.reason == .cheapGas })
            } else {
                #expect(sent.map(\.uploadIds.count) == [20, 20, 20] && sent.allSatisfy { $0.reason == .cheapGas })
                #expect(p.queueLength == 5)
            }
        }
    }

    /// With a high-priority upload every tick, q, the share of such ticks, comes near 1, and the
    /// program would wait for dips the market does not bring (`messageChanceMaxPermille`). After
    /// 721 such ticks (a refit), a low-priority upload with 4 hours left rides a deadline message
    /// at a base fee where its gain under q = 0.25 (the ceiling) is positive and under the q the
    /// ticks gave is negative; with the ceiling lifted, it waits.
    @Test func theChanceOfAMessageIsCappedForTheProgram() throws {
        var config = SimulatedChain.Config()
        config.trace = .spiky
        config.seed = 3
        let fees = SimulatedChain.baseFees(config: config, epochs: 2_880 + 721)
        let logs = fees.map { log10(Double($0)) }
        let model = try #require(FeeModel.fit(logs: logs))
        let alone = BatchPolicy.ModelConfig().alone
        let capped = WaitValues(model: model, messageChance: 0.25, alone: alone, epochsMax: 480)
        // q after 721 ticks, each with a high-priority upload: (721 + 1) / (721 + 5), as
        // `Market.messageChance` counts before its ceiling.
        let free = WaitValues(model: model, messageChance: (721.0 + 1) / (721 + 5), alone: alone, epochsMax: 480)
        let gain = { (v: WaitValues, i: Int) in v.worth(epochsLeft: 479, climb: 0, point: i) - v.fee(point: i) }
        // Points where the ceiling makes the upload ride and the ticks' q would not, below the
        // last fee (so that the tick is not a climb's).
        let last = logs.last! - model.reference
        let between = (0..<capped.points).filter {
            gain(capped, $0) >= 0 && gain(free, $0) < 0 && log10(capped.fee(point: $0)) < last
        }
        try #require(between.count >= 3, "q makes no difference here")
        let point = between[between.count / 2]
        let fee = Int128((pow(10, model.reference) * capped.fee(point: point)).rounded())
        for ceiling in [250, 1_000] {
            var policyConfig = BatchPolicy.Config()
            var modelConfig = BatchPolicy.ModelConfig()
            modelConfig.messageChanceMaxPermille = ceiling
            policyConfig.model = modelConfig
            var p = BatchPolicy(config: policyConfig)
            p.remember(baseFees: Array(fees.prefix(2_880)))
            for (t, marketFee) in fees.dropFirst(2_880).enumerated() {
                enqueue(&p, ["h\(t)"], .high, at: Int64(t) * 30_000)
                _ = p.tick(nowMs: Int64(t) * 30_000, baseFee: marketFee)
            }
            // Queued after the last tick (the ticks' own high-priority uploads may have ridden).
            enqueue(&p, ["h"], .high, at: 720 * 30_000)
            enqueue(&p, ["low"], .low, at: 720 * 30_000)
            let sent = p.tick(nowMs: 721 * 30_000, baseFee: fee)
            #expect(sent.first?.reason == .deadline && sent.first?.uploadIds.first == "h")
            #expect(sent.flatMap(\.uploadIds).contains("low") == (ceiling == 250), "ceiling \(ceiling)")
        }
    }

    /// Until it has `fitEpochsMin` base fees the rules decide: a full batch goes at once (rule 1).
    /// Fitted, the model mode has no such rule: 20 medium-priority uploads stay.
    @Test func theRulesDecideUntilTheModelIsFitted() {
        for fitted in [false, true] {
            var p = modelPolicy()
            p.remember(baseFees: Array(calmDay().prefix(fitted ? 2_880 : 2_000)))
            enqueue(&p, (0..<20).map { "m\($0)" }, .medium)
            let sent = p.tick(nowMs: 0, baseFee: 95_000_000)
            #expect(sent.map(\.reason) == (fitted ? [] : [.full]))
        }
    }

    /// The quiet rule in the model mode (the rule mode's tests: `BatchPolicyTests`): one, or
    /// five, low-priority uploads left after a day of calm's market have no message to ride and
    /// too little gain to open one, so they wait. An hour after they were queued, with none
    /// queued since, the stopping rule decides for them all (the rule mode's median takes one or
    /// two only): with three hours left they do not go at the eight-hour median (a lower base
    /// fee is likely before their deadline), and go together at 0.8 times it. Off, they wait on.
    @Test(arguments: [1, 5])
    func inModelModeWhatIsLeftGoesOnceTheQueueIsQuiet(count: Int) {
        for quiet in [true, false] {
            var p = modelPolicy()
            if !quiet {
                var config = p.config
                config.quietMs = 0
                p = BatchPolicy(config: config)
            }
            p.remember(baseFees: calmDay())
            let median = p.referenceMedian()
            let ids = (0..<count).map { "left\($0)" }
            enqueue(&p, ids, .low)
            for t in 0..<120 {
                #expect(p.tick(nowMs: Int64(t) * 30_000, baseFee: median).isEmpty, "tick \(t)")
            }
            #expect(p.isModelFitted)
            #expect(p.tick(nowMs: 3_600_000, baseFee: median).isEmpty)  // quiet, at the median
            let sent = p.tick(nowMs: 3_630_000, baseFee: median * 8 / 10)
            #expect(sent == (quiet ? [BatchPolicy.Batch(uploadIds: ids, reason: .quiet)] : []))
        }
    }

    /// Twelve hours of spiky FIP-0115 after a day of it, uploads of every priority arriving at
    /// random: every upload goes by its deadline, in batches of at most 20, each once.
    @Test func inModelModeNoUploadMissesItsDeadline() {
        var config = SimulatedChain.Config()
        config.trace = .spiky
        config.rule = .fip0115
        let fees = SimulatedChain.baseFees(config: config, epochs: 2 * 2_880)
        var p = modelPolicy()
        p.remember(baseFees: Array(fees.prefix(2_880)))
        var rng = SplitMix64(seed: 11)
        var deadlines: [String: Int64] = [:]
        var sent = Set<String>()
        for (t, fee) in fees.dropFirst(2_880).prefix(1_440).enumerated() {
            let now = Int64(t) * 30_000
            for n in 0..<Int(rng.next() % 3) {
                let priority = [UploadPriority.high, .medium, .low][Int(rng.next() % 3)]
                let id = "u\(t)_\(n)"
                enqueue(&p, [id], priority, at: now)
                deadlines[id] = now + p.config.deadlineMs[priority]!
            }
            for batch in p.tick(nowMs: now, baseFee: fee) {
                #expect(batch.uploadIds.count <= 20)
                for id in batch.uploadIds {
                    #expect(now < deadlines[id]!, "\(id) missed its deadline")
                    #expect(sent.insert(id).inserted)
                }
            }
        }
        #expect(deadlines.count > 1_000 && sent.count + p.queueLength == deadlines.count)
    }

    /// Twelve hours of spiky FIP-0115 after a day of it, the heads as a worker whose ticks keep the
    /// epoch's rate sees them when blocks come late: now and then a tick sees the last tick's head
    /// again (`newHeight` false), and the next one the height after the one it missed, whose base
    /// fee comes first (`observe(missed:)`); every 13th, two heights are missed. The policy learns
    /// what it learns from one tick a height: the same base fees (the rules' history, the model's),
    /// the same climb at each height, the same count of heights for q and the refits. At a head
    /// seen again, an upload due still goes.
    @Test func aLateBlockTeachesThePolicyWhatOneTickAHeightDoes() throws {
        var config = SimulatedChain.Config()
        config.trace = .spiky
        config.rule = .fip0115
        let fees = SimulatedChain.baseFees(config: config, epochs: 2 * 2_880)
        var reference = modelPolicy(), late = modelPolicy()
        reference.remember(baseFees: Array(fees.prefix(2_880)))
        late.remember(baseFees: Array(fees.prefix(2_880)))
        var climbs: [Int] = []
        for (t, fee) in fees.dropFirst(2_880).prefix(1_440).enumerated() {
            _ = reference.tick(nowMs: Int64(t) * 30_000, baseFee: fee)
            climbs.append(try #require(reference.market?.climb))
        }
        try #require((climbs.max() ?? 0) >= 5, "no climb in these twelve hours")
        var h = 0, tick = 0, repeats = 0, missed = 0
        while h < 1_440 {
            let now = Int64(tick) * 30_000
            tick += 1
            if tick % 7 == 0, h > 0 {
                if repeats == 0 {
                    enqueue(&late, ["due"], .high, at: now - 30_000)
                    #expect(late.tick(nowMs: now - 30_000, baseFee: fees[2_880 + h - 1], newHeight: false).isEmpty)
                    let sent = late.tick(nowMs: now, baseFee: fees[2_880 + h - 1], newHeight: false)
                    #expect(sent.map(\.uploadIds) == [["due"]] && sent.first?.reason == .deadline)
                } else {
                    _ = late.tick(nowMs: now, baseFee: fees[2_880 + h - 1], newHeight: false)
                }
                repeats += 1
                continue
            }
            let skip = tick % 13 == 0 ? 2 : tick % 7 == 1 && h > 0 ? 1 : 0
            if skip > 0, h + skip < 1_440 {
                late.observe(missed: Array(fees[(2_880 + h)..<(2_880 + h + skip)]))
                h += skip
                missed += skip
            }
            _ = late.tick(nowMs: now, baseFee: fees[2_880 + h])
            #expect(late.market?.climb == climbs[h], "height \(h)")
            h += 1
        }
        #expect(repeats > 100 && missed > 200)
        #expect(late.baseFeesLearned == reference.baseFeesLearned)
        #expect(late.market?.logs == reference.market?.logs)
        #expect(late.market?.ticks == reference.market?.ticks && late.market?.ticksSinceFit == reference.market?.ticksSinceFit)
    }

    @Test func configRefusesAModelFittedToTooLittle() {
        var config = BatchPolicy.Config()
        var model = BatchPolicy.ModelConfig()
        model.fitEpochsMin = 100
        config.model = model
        #expect(throws: CreditsError.self) { try config.validate(gas: .addPieces) }
    }
}
