import Testing
@testable import CreditsCore

/// DESIGN.md's gas facts, from Lotus's burn.go and basefee.go and FIP-0115.
@Suite struct GasModelTests {
    @Test func savingsFollowTheModelAtDesignsFigures() {
        let gas = BatchGasModel.addPieces
        // f·(1 − 1/K) with f = 228.7 / (228.7 + 78.2): 49.7% at 3, 59.6% at 5, 70.8% at 20.
        #expect(gas.savingsPPM(items: 1) == 0)
        #expect(gas.savingsPPM(items: 3) / 1_000 == 496)
        #expect(gas.savingsPPM(items: 5) / 1_000 == 596)
        #expect(gas.savingsPPM(items: 20) / 1_000 == 707)
        #expect(gas.gasUsed(items: 5) == 228_700_000 + 5 * 78_200_000)
        #expect(gas.gasLimit(items: 4) == gas.gasUsed(items: 4) * 5 / 4)
    }

    @Test func batchesStayUnderAQuarterBlock() {
        let gas = BatchGasModel.addPieces
        #expect(gas.itemsPerMessageMax == 22)
        #expect(gas.gasLimit(items: gas.itemsPerMessageMax) <= Filecoin.messageGasLimitMax)
        #expect(gas.gasLimit(items: gas.itemsPerMessageMax + 1) > Filecoin.messageGasLimitMax)
    }

    @Test func feeSplitsAsBurnGoDoes() {
        // GasLimit = 1.25 × GasUsed → over = 1.25u − 1.1u = 0.15u; burned = 0.25u × 0.15u / u.
        let used: Int64 = 1_000_000
        let fee = MessageFee.compute(baseFee: 200, feeCap: 10_000, premium: 150, gasLimit: 1_250_000, gasUsed: used)
        #expect(fee.baseFeeBurn == 200 * 1_000_000)
        #expect(MessageFee.overEstimationGas(gasLimit: 1_250_000, gasUsed: used) == 37_500)
        #expect(fee.overEstimationBurn == 200 * 37_500)
        #expect(fee.minerTip == 150 * 1_250_000)
        #expect(fee.total == fee.baseFeeBurn + fee.overEstimationBurn + fee.minerTip)
        // The fee cap bounds the base fee paid and the tip.
        let capped = MessageFee.compute(baseFee: 500, feeCap: 520, premium: 150, gasLimit: 1_250_000, gasUsed: used)
        #expect(capped.baseFeeBurn == 500 * 1_000_000 && capped.minerTip == 20 * 1_250_000)
        let under = MessageFee.compute(baseFee: 700, feeCap: 600, premium: 150, gasLimit: 1_250_000, gasUsed: used)
        #expect(under.baseFeeBurn == 600 * 1_000_000 && under.minerTip == 0)
        // A tight limit burns nothing extra; a huge one burns at most GasLimit − GasUsed.
        #expect(MessageFee.overEstimationGas(gasLimit: 1_100_000, gasUsed: used) == 0)
        #expect(MessageFee.overEstimationGas(gasLimit: 10_000_000, gasUsed: used) == 9_000_000)
    }

    @Test func preNV28BaseFeeMovesAtMostAnEighth() {
        let rule = BaseFeeRule.preNV28
        let target = Filecoin.blockGasTarget * Filecoin.blocksPerTipset
        #expect(rule.next(base: 800, gasLimitSum: target, blocks: 5, p20Premium: 0) == 800)
        #expect(rule.next(base: 800, gasLimitSum: 2 * target, blocks: 5, p20Premium: 0) == 900)
        #expect(rule.next(base: 800, gasLimitSum: 10 * target, blocks: 5, p20Premium: 0) == 900)
        #expect(rule.next(base: 800, gasLimitSum: 0, blocks: 5, p20Premium: 0) == 700)
        #expect(rule.next(base: 100, gasLimitSum: 0, blocks: 5, p20Premium: 0) == 100)
    }

    @Test func fip0115FollowsThePremiumPercentile() {
        let rule = BaseFeeRule.fip0115
        // MaxAdj = ceil(800 / 8) = 100; next = base + min(MaxAdj, P20 − MaxAdj).
        #expect(rule.next(base: 800, gasLimitSum: 0, blocks: 5, p20Premium: 0) == 700)
        #expect(rule.next(base: 800, gasLimitSum: 0, blocks: 5, p20Premium: 150) == 850)
        #expect(rule.next(base: 800, gasLimitSum: 0, blocks: 5, p20Premium: 10_000) == 900)
        #expect(rule.next(base: 801, gasLimitSum: 0, blocks: 5, p20Premium: 0) == 700)
        #expect(rule.next(base: 101, gasLimitSum: 0, blocks: 5, p20Premium: 0) == 100)
    }

    /// Lotus's (and Forest's) test vectors after the Smoke upgrade, and a fall that does not
    /// divide evenly: Go's big.Div rounds it down (87,500,000.125 → 87,500,000 is the floor of
    /// 100,000,001 − 12,500,000.125), where division toward zero would give 87,500,001.
    @Test func preNV28DividesAsLotusDoes() {
        let rule = BaseFeeRule.preNV28
        let target = Filecoin.blockGasTarget, limit = Filecoin.blockGasLimit
        #expect(rule.next(base: 100_000_000, gasLimitSum: 0, blocks: 1, p20Premium: 0) == 87_500_000)
        #expect(rule.next(base: 100_000_000, gasLimitSum: 0, blocks: 5, p20Premium: 0) == 87_500_000)
        #expect(rule.next(base: 100_000_000, gasLimitSum: target, blocks: 1, p20Premium: 0) == 100_000_000)
        #expect(rule.next(base: 100_000_000, gasLimitSum: target * 2, blocks: 2, p20Premium: 0) == 100_000_000)
        #expect(rule.next(base: 100_000_000, gasLimitSum: limit * 2, blocks: 2, p20Premium: 0) == 112_500_000)
        #expect(rule.next(base: 100_000_000, gasLimitSum: limit * 15 / 10, blocks: 2, p20Premium: 0) == 106_250_000)
        #expect(rule.next(base: 100_000_001, gasLimitSum: 0, blocks: 1, p20Premium: 0) == 87_500_000)
        #expect(rule.next(base: 1_000_003, gasLimitSum: target / 2, blocks: 1, p20Premium: 0) == 937_502)
    }

    /// FIP-0115's test vectors (base fee, P20 premium, next).
    @Test(arguments: [(100, 0, 100), (100, 13, 100), (100, 14, 101), (100, 26, 113), (801, 0, 700), (801, 20, 720),
                      (801, 100, 800), (801, 200, 900), (801, 201, 901), (808, 0, 707), (808, 1, 708), (808, 201, 908),
                      (808, 202, 909), (808, 203, 909)])
    func fip0115MatchesItsTestVectors(base: Int, premium: Int, next: Int) {
        #expect(BaseFeeRule.fip0115.next(base: Int128(base), gasLimitSum: 0, blocks: 5, p20Premium: Int128(premium)) == Int128(next))
    }

    /// The premium at gas index 7,999,999,999 from the top (the cases of Forest's
    /// weighted_quick_select tests): zero when the messages hold no more gas than that.
    @Test func thePercentilePremiumIsWeighedByGasLimit() {
        typealias M = (gasLimit: Int64, premium: Int128)
        let p = BaseFeeRule.percentilePremium
        #expect(p([]) == 0)
        #expect(p([(5_999_999_999, 123)] as [M]) == 0)
        #expect(p([(8_000_000_001, 123)] as [M]) == 123)
        #expect(p([(8_000_000_000, 123)] as [M]) == 123)
        #expect(p([(7_999_999_999, 123)] as [M]) == 0)
        #expect(p([(5_999_999_999, 123), (2_000_000_000, 100)] as [M]) == 0)
        #expect(p([(5_999_999_999, 123), (2_000_000_001, 0)] as [M]) == 0)
        #expect(p([(5_999_999_999, 123), (2_000_000_001, 100)] as [M]) == 100)
        #expect(p([(7_999_999_999, 123), (2_000_000_001, 100)] as [M]) == 100)
        #expect(p([(8_000_000_000, 123), (2_000_000_000, 100)] as [M]) == 123)
        #expect(p([(2_000_000_000, 100), (8_000_000_000, 123)] as [M]) == 123)
        let seven: [M] = [(4_000_000_000, 100), (1_000_000_000, 200), (2_000_000_000, 300), (1_000_000_000, 400),
                          (2_000_000_000, 500), (2_000_000_000, 600), (3_000_000_000, 700)]
        #expect(p(seven) == 400)
        #expect(p(seven.reversed()) == 400)
    }

    /// The next base fee from a tipset's blocks: a message in two blocks counts once (by CID
    /// before nv28, by sender and nonce under FIP-0115), and FIP-0115 ranks effective premiums.
    @Test func theNextBaseFeeCountsEachMessageOnce() {
        func m(_ cid: String, nonce: Int64, limit: Int64, premium: Int128, feeCap: Int128 = 1_000_000) -> TipsetMessage {
            TipsetMessage(cid: cid, from: "f1sender\(cid.prefix(1))", nonce: nonce, gasLimit: limit, feeCap: feeCap, premium: premium)
        }
        let a = m("a", nonce: 1, limit: 3_000_000_000, premium: 900)
        let b = m("b", nonce: 1, limit: 2_000_000_000, premium: 600)
        let c = m("c", nonce: 1, limit: 4_000_000_000, premium: 150)
        // Bids 50,000, but its fee cap is 1 under the base fee of 1,000: effectively −1.
        let e = m("e", nonce: 1, limit: 4_000_000_000, premium: 50_000, feeCap: 999)
        let blocks = [[a, b], [a, c, e], [c]]
        // From the top, 3 + 2 + 4 (×10⁹ gas) passes the index at c: P20 = 150; MaxAdj = 125, so
        // next = 1,000 + min(125, 150 − 125). With a's copy counted, or e's bid taken as it is,
        // the index would fall at b (600): 1,125.
        #expect(BaseFeeRule.fip0115.next(parentBaseFee: 1_000, blocks: blocks) == 1_025)
        // The same sender and nonce under another CID (signed again) is one message too: a once
        // (3) and c (4) hold less than 8, so P20 is zero and the base fee falls by MaxAdj.
        let a2 = TipsetMessage(cid: "a2", from: a.from, nonce: a.nonce, gasLimit: a.gasLimit, feeCap: a.feeCap, premium: a.premium)
        #expect(BaseFeeRule.fip0115.next(parentBaseFee: 1_000, blocks: [[a], [a2], [c]]) == 875)
        // Before nv28: unique gas limits 3 + 2 + 4 + 4 = 13 (×10⁹) over 3 blocks = 4.33 a block,
        // under the 5 target: 1,000 · (−0.667/5)/8 = −16.67 → −17.
        #expect(BaseFeeRule.preNV28.next(parentBaseFee: 1_000, blocks: blocks) == 983)
        // a counted twice would make 16 / 3 = 5.33 a block: a rise.
        #expect(BaseFeeRule.preNV28.next(parentBaseFee: 1_000, blocks: [[a, b, c, e, m("x", nonce: 2, limit: 3_000_000_000, premium: 0)], [], []]) == 1_008)
    }

    /// `--fil-usd` and `simulate`'s rates: digits, a point, up to 9 decimals; nothing else.
    @Test func decimalRatesReadDigitsOnly() {
        #expect(DecimalRate("5")?.nanos == 5_000_000_000)
        #expect(DecimalRate("0.3")?.nanos == 300_000_000)
        #expect(DecimalRate("5.123456789")?.nanos == 5_123_456_789)
        #expect(DecimalRate("0")?.nanos == 0)
        for bad in ["-0.5", "-0", "-1", "+1", "", ".", "1.", ".5", "1.2.3", "1.0000000001", " 1", "1e3", "\u{0663}", "0.\u{0663}"] {
            #expect(DecimalRate(bad) == nil, "\(bad)")
        }
        #expect(DecimalRate("2").map { $0.cents(attoFil: 1_000_000_000_000_000_000) } == 200)  // 1 FIL at $2
    }

    @Test func defaultFeeCapAllowsTwentyEpochsOfRises() {
        let cap = MessageFee.defaultFeeCap(baseFee: 1_000_000, premium: 100_000)
        #expect(cap > 10_000_000 && cap < 10_700_000)
    }
}

/// The batch policy, as a script: event in, batches out.
@Suite struct BatchPolicyTests {
    /// A policy for short scripts. Their few base fees swing by 10% and more, which the
    /// volatility hold would take for a volatile market and rule 2b for a spike's first tick:
    /// both are off unless asked for (each has its own script below).
    func policy(volatility: Bool = false) -> BatchPolicy {
        var config = BatchPolicy.Config()
        config.historyLengthMin = 3
        config.cheapBatchMin = 3
        config.spikeJumpPercent = 0
        if !volatility { config.holdVolatilityPermille = 0 }
        return BatchPolicy(config: config)
    }

    /// `ticks` ticks, 30 s apart from `now`, the base fee falling `permille`‰ before each, and
    /// no batch sent by any of them; `fee` and `now` are left at the last tick's and the next.
    func fall(_ p: inout BatchPolicy, ticks: Int, permille: Int, fee: inout Int128, now: inout Int64) {
        for _ in 0..<ticks {
            fee = fee * Int128(1_000 - permille) / 1_000
            #expect(p.tick(nowMs: now, baseFee: fee).isEmpty)
            now += 30_000
        }
    }

    @Test func waitsForCheapGasThenSendsTheBatch() {
        var p = policy()
        for i in 0..<3 {
            let accepted = p.enqueue(uploadId: "u\(i)", priority: .low, queuedAtMs: 0)
            #expect(accepted)
        }
        do {
            let sent = p.tick(nowMs: 30_000, baseFee: 1_000)
            #expect(sent.isEmpty)
        }  // no history yet
        do {
            let sent = p.tick(nowMs: 60_000, baseFee: 1_000)
            #expect(sent.isEmpty)
        }
        do {
            let sent = p.tick(nowMs: 90_000, baseFee: 1_100)
            #expect(sent.isEmpty)
        }
        do {
            let sent = p.tick(nowMs: 120_000, baseFee: 1_200)
            #expect(sent.isEmpty)
        }  // dearer than the 20th percentile
        let batches = p.tick(nowMs: 150_000, baseFee: 900)
        #expect(batches == [BatchPolicy.Batch(uploadIds: ["u0", "u1", "u2"], reason: .cheapGas)])
        #expect(p.queueLength == 0)
    }

    /// Rule 4: a climb of `risePercent` over the window sends what waits (three or more).
    @Test func aClimbingBaseFeeSendsWhatWaits() {
        var config = BatchPolicy.Config()
        config.risePercent = 10
        config.riseWindowTicks = 3
        config.spikeJumpPercent = 0  // doubling in a tick would start a spike (rule 2b)
        var p = BatchPolicy(config: config)
        for i in 0..<3 { _ = p.enqueue(uploadId: "r\(i)", priority: .low, queuedAtMs: 0) }
        #expect(p.tick(nowMs: 30_000, baseFee: 1_000).isEmpty)
        #expect(p.tick(nowMs: 60_000, baseFee: 1_030).isEmpty)
        #expect(p.tick(nowMs: 90_000, baseFee: 1_060).isEmpty)
        #expect(p.tick(nowMs: 120_000, baseFee: 1_099).isEmpty)  // 9.9% over three ticks ago
        #expect(p.tick(nowMs: 150_000, baseFee: 1_133) == [BatchPolicy.Batch(uploadIds: ["r0", "r1", "r2"], reason: .rising)])
        // Off by default.
        var quiet = BatchPolicy.Config()
        quiet.spikeJumpPercent = 0
        var off = BatchPolicy(config: quiet)
        for i in 0..<3 { _ = off.enqueue(uploadId: "o\(i)", priority: .low, queuedAtMs: 0) }
        for (t, fee) in [1_000, 2_000, 4_000, 8_000, 16_000].enumerated() {
            #expect(off.tick(nowMs: Int64(t + 1) * 30_000, baseFee: Int128(fee)).isEmpty)
        }
    }

    /// Rule 5: a base fee back at (or under) the mean fee the batch could first have gone out
    /// at (the first tick after each upload was queued) sends it.
    @Test func aBaseFeeBackAtTheQueuePriceSendsTheBatch() {
        var config = BatchPolicy.Config()
        config.queuePriceBatchMin = 3
        config.spikeJumpPercent = 0  // +30% in a tick would start a spike (rule 2b)
        var p = BatchPolicy(config: config)
        for i in 0..<2 { _ = p.enqueue(uploadId: "q\(i)", priority: .low, queuedAtMs: 10_000) }
        #expect(p.tick(nowMs: 30_000, baseFee: 1_000).isEmpty)  // q0, q1 could have gone at 1,000
        _ = p.enqueue(uploadId: "q2", priority: .low, queuedAtMs: 40_000)
        #expect(p.tick(nowMs: 60_000, baseFee: 1_300).isEmpty)  // q2 at 1,300: mean 1,100
        #expect(p.tick(nowMs: 90_000, baseFee: 1_101).isEmpty)
        #expect(p.tick(nowMs: 120_000, baseFee: 1_100) == [BatchPolicy.Batch(uploadIds: ["q0", "q1", "q2"], reason: .queuePrice)])
    }

    @Test func twoUploadsAreNotWorthSendingEarly() {
        var p = policy()
        _ = p.enqueue(uploadId: "a", priority: .low, queuedAtMs: 0)
        _ = p.enqueue(uploadId: "b", priority: .low, queuedAtMs: 0)
        for t in 1...10 { _ = p.tick(nowMs: Int64(t) * 30_000, baseFee: 1_000) }
        do {
            let sent = p.tick(nowMs: 330_000, baseFee: 100)
            #expect(sent.isEmpty)
        }
    }

    @Test func aFullBatchGoesAtOnce() {
        var p = policy()
        for i in 0..<45 { _ = p.enqueue(uploadId: (i < 10 ? "u0\(i)" : "u\(i)"), priority: .low, queuedAtMs: Int64(i)) }
        let batches = p.tick(nowMs: 30_000, baseFee: 1_000)
        #expect(batches.map(\.reason) == [.full, .full])
        #expect(batches.map(\.uploadIds.count) == [20, 20])
        #expect(batches[0].uploadIds.first == "u00")
        #expect(p.queueLength == 5)
    }

    @Test func aHighPriorityUploadGoesAtTheLastTickBeforeItsDeadline() {
        var p = policy()
        _ = p.enqueue(uploadId: "slow", priority: .low, queuedAtMs: 0)
        _ = p.enqueue(uploadId: "fast", priority: .high, queuedAtMs: 0)  // deadline 60 s
        do {
            let sent = p.tick(nowMs: 0, baseFee: 5_000)
            #expect(sent.isEmpty)
        }
        let batches = p.tick(nowMs: 30_000, baseFee: 5_000)  // next tick (60 s) would be too late
        #expect(batches == [BatchPolicy.Batch(uploadIds: ["fast", "slow"], reason: .deadline)])
    }

    @Test func noUploadEverMissesItsDeadline() {
        // Random arrivals and base fees; every upload must be sent no later than its deadline
        // (every hold on: such base fees are as volatile as a market gets).
        var rng = SystemRandomNumberGenerator()
        var p = policy(volatility: true)
        var deadline: [String: Int64] = [:]
        var sentAt: [String: Int64] = [:]
        var now: Int64 = 0
        for step in 0..<2_000 {
            for j in 0..<Int.random(in: 0...3, using: &rng) {
                let priority = UploadPriority.allCases.randomElement(using: &rng)!
                let id = "s\(step)_\(j)"
                _ = p.enqueue(uploadId: id, priority: priority, queuedAtMs: now)
                deadline[id] = now + p.config.deadlineMs[priority]!
            }
            for batch in p.tick(nowMs: now, baseFee: Int128.random(in: 100...10_000, using: &rng)) {
                #expect(batch.uploadIds.count <= p.config.itemsPerBatchMax)
                for id in batch.uploadIds { sentAt[id] = now }
            }
            now += 30_000
        }
        for (id, at) in sentAt { #expect(at < deadline[id]!, "\(id) sent at or after its deadline") }
        #expect(sentAt.count + p.queueLength == deadline.count)
    }

    /// Rule 0: above the recent median, a low-priority upload sits out a batch that a deadline
    /// sends, and joins the next one once the base fee is back at the median.
    @Test func aLowPriorityUploadWaitsOutADearHour() {
        for holding in [true, false] {
            var config = BatchPolicy.Config()
            config.historyLengthMin = 3
            config.holdVolatilityPermille = 0  // 1,000 → 2,000 would count as a volatile market
            if !holding { config.holdAbovePercent = 0 }
            var p = BatchPolicy(config: config)
            for t in 0..<3 { #expect(p.tick(nowMs: Int64(t) * 30_000, baseFee: 1_000).isEmpty) }  // median 1,000
            _ = p.enqueue(uploadId: "low", priority: .low, queuedAtMs: 90_000)
            _ = p.enqueue(uploadId: "high", priority: .high, queuedAtMs: 90_000)  // due by 150 s
            #expect(p.tick(nowMs: 90_000, baseFee: 2_000).isEmpty)
            let dear = p.tick(nowMs: 120_000, baseFee: 2_000)
            guard holding else {
                #expect(dear == [BatchPolicy.Batch(uploadIds: ["high", "low"], reason: .deadline)])
                continue
            }
            #expect(dear == [BatchPolicy.Batch(uploadIds: ["high"], reason: .deadline)])
            #expect(p.queueLength == 1)
            _ = p.enqueue(uploadId: "high2", priority: .high, queuedAtMs: 120_000)  // due by 180 s
            let back = p.tick(nowMs: 150_000, baseFee: 1_000)
            #expect(back == [BatchPolicy.Batch(uploadIds: ["high2", "low"], reason: .deadline)])
        }
    }

    /// Rule 0 for medium priority: above the median, a medium-priority upload sits out the batches
    /// high-priority deadlines send while the base fee falls (by `holdFallPercent` or more since
    /// the last tick), but not while it rises, nor when the rule is off. Held, it joins them again
    /// `holdGroupTicks` before its deadline.
    @Test func aMediumPriorityUploadWaitsOutAFallAboveTheMedian() {
        for (fee, holdFallPercent, held) in [(1_900, 1, true), (1_990, 1, false), (2_100, 1, false), (1_900, 0, false)] {
            var config = BatchPolicy.Config()
            config.historyLengthMin = 3
            config.holdFallPercent = holdFallPercent
            var p = BatchPolicy(config: config)
            for t in 0..<100 { #expect(p.tick(nowMs: Int64(t) * 30_000, baseFee: 1_000).isEmpty) }  // median 1,000
            let queued: Int64 = 100 * 30_000
            _ = p.enqueue(uploadId: "medium", priority: .medium, queuedAtMs: queued)
            // A high-priority upload every tick; each deadline batch takes the next one along, so
            // one goes every other tick: at queued + 30 s, + 90 s, ...
            var now = queued
            var base: Int128 = 2_000
            var sent: [Int64] = []
            while now <= queued + 900_000 {
                _ = p.enqueue(uploadId: "high\(now)", priority: .high, queuedAtMs: now)
                for b in p.tick(nowMs: now, baseFee: base) where b.uploadIds.contains("medium") { sent.append(now) }
                now += 30_000
                // First 2,000 → `fee`; then down 2% a tick, still above the median at the deadline.
                base = now == queued + 30_000 ? Int128(fee) : base * 98 / 100
            }
            let firstBatch = queued + 30_000
            // Free again 10 ticks before its deadline (queued + 600 s): the batch after that.
            let rejoined = queued + 630_000
            #expect(config.holdGroupTicks == 10)
            #expect(sent == [held ? rejoined : firstBatch], "base fee 2,000 → \(fee), holdFallPercent \(holdFallPercent)")
        }
    }

    /// Rule 0 in a volatile market: below the median, a low-priority upload with hours left still
    /// waits unless the base fee is down to its reservation price, median·exp(−0.3·σ·√k); in a
    /// calm market (σ under 1.5% a tick), or with the rule off, it goes with the next batch.
    @Test func inAVolatileMarketALowPriorityUploadWaitsForADeepDip() {
        // (swing of the last hour, base fee now, rule on, held)
        let cases: [(Int128, Int128, Bool, Bool)] = [
            (100, 1_000, true, true),  // σ ≈ 9.5%, median 1,000: reservation ≈ 1,000·e^(−0.3·0.095·√479) ≈ 535
            (100, 300, true, false),   // below it (the drop to 300 raises σ to about 15%: ≈ 370): goes
            (10, 1_000, true, false),  // σ ≈ 1%: calm, not volatile
            (100, 1_000, false, false),
        ]
        for (swing, fee, on, held) in cases {
            var config = BatchPolicy.Config()
            config.historyLengthMin = 3
            if !on { config.holdVolatilityPermille = 0 }
            var p = BatchPolicy(config: config)
            // An hour alternating 1,000 and 1,000 + swing.
            for t in 0..<120 { #expect(p.tick(nowMs: Int64(t) * 30_000, baseFee: 1_000 + (t % 2 == 0 ? 0 : swing)).isEmpty) }
            let now: Int64 = 120 * 30_000
            _ = p.enqueue(uploadId: "low", priority: .low, queuedAtMs: now)
            _ = p.enqueue(uploadId: "high", priority: .high, queuedAtMs: now)
            #expect(p.tick(nowMs: now, baseFee: fee).isEmpty)
            let sent = p.tick(nowMs: now + 30_000, baseFee: fee)
            #expect(sent == [BatchPolicy.Batch(uploadIds: held ? ["high"] : ["high", "low"], reason: .deadline)],
                    "swing \(swing), base fee \(fee), rule \(on ? "on" : "off")")
        }
    }

    /// Rule 0 in a slow decay: below the median, in a market that is not volatile, a low-priority
    /// upload sits out the batches deadlines send while the base fee stands `holdDecayPercent`
    /// (6%) or more below its level `holdDecayTicks` (30) ago; a shallower fall, or the rule
    /// off, and it goes with the next batch.
    @Test func inASlowDecayALowPriorityUploadWaits() {
        // (fall per tick in thousandths, rule on, held)
        for (fall, on, held) in [(3, true, true), (1, true, false), (3, false, false)] {
            var config = BatchPolicy.Config()
            config.historyLengthMin = 3
            if !on { config.holdDecayPercent = 0 }
            var p = BatchPolicy(config: config)
            for t in 0..<100 { #expect(p.tick(nowMs: Int64(t) * 30_000, baseFee: 1_000_000).isEmpty) }  // median 1,000,000
            // 30 ticks down `fall`‰ a tick: 0.3% → 8.6% below, 0.1% → 3% below. σ is 0 (a
            // steady fall), so the market is not volatile.
            var fee: Int128 = 1_000_000
            var now: Int64 = 100 * 30_000
            self.fall(&p, ticks: 30, permille: fall, fee: &fee, now: &now)
            _ = p.enqueue(uploadId: "low", priority: .low, queuedAtMs: now)
            _ = p.enqueue(uploadId: "high", priority: .high, queuedAtMs: now)
            fee = fee * Int128(1_000 - fall) / 1_000
            #expect(p.tick(nowMs: now, baseFee: fee).isEmpty)
            fee = fee * Int128(1_000 - fall) / 1_000
            let sent = p.tick(nowMs: now + 30_000, baseFee: fee)
            #expect(sent == [BatchPolicy.Batch(uploadIds: held ? ["high"] : ["high", "low"], reason: .deadline)],
                    "fall \(fall)‰ a tick, rule \(on ? "on" : "off")")
        }
    }

    /// Rule 0's decay hold, like every rule that reads the history, waits for `historyLengthMin`
    /// (10) base fees, even when it looks back fewer (`holdDecayTicks` 3): with 6, a low-priority
    /// upload goes with the next batch; with 12 of the same fall it waits.
    @Test func theDecayHoldWaitsForEnoughHistory() {
        for (before, held) in [(5, false), (11, true)] {
            var config = BatchPolicy.Config()
            config.holdDecayTicks = 3
            var p = BatchPolicy(config: config)
            // 3% down a tick: 8.7% over 3 ticks. σ is 0 (a steady fall), so not volatile.
            var fee: Int128 = 1_000_000
            var now: Int64 = 0
            for _ in 0..<before {
                #expect(p.tick(nowMs: now, baseFee: fee).isEmpty)
                fee = fee * 97 / 100
                now += 30_000
            }
            _ = p.enqueue(uploadId: "low", priority: .low, queuedAtMs: now)
            _ = p.enqueue(uploadId: "high", priority: .high, queuedAtMs: now)
            #expect(p.tick(nowMs: now, baseFee: fee).isEmpty)
            fee = fee * 97 / 100
            let sent = p.tick(nowMs: now + 30_000, baseFee: fee)
            #expect(sent == [BatchPolicy.Batch(uploadIds: held ? ["high"] : ["high", "low"], reason: .deadline)],
                    "\(before + 1) base fees before the batch")
        }
    }

    /// Rule 2b: in a market that is not volatile, a base fee `spikeJumpPercent` (5%) above the
    /// last tick's sends everything waiting at once, held uploads too; not a smaller jump, not
    /// in a volatile market, not fewer than `itemsPerBatchMin` uploads, not with the rule off.
    @Test func aSpikesFirstTickSendsEverythingWaiting() {
        // (jump in percent, history swings, uploads, rule on, sent)
        let cases: [(Int128, Bool, Int, Bool, Bool)] = [
            (6, false, 3, true, true),
            (4, false, 3, true, false),
            (6, true, 3, true, false),  // σ ≈ 9.5%: a volatile market
            (6, false, 2, true, false),
            (6, false, 3, false, false),
        ]
        for (jump, swings, uploads, on, sent) in cases {
            var config = BatchPolicy.Config()
            config.historyLengthMin = 3
            config.holdVolatilityPermille = 0  // the swinging history would hold the uploads
            if !on { config.spikeJumpPercent = 0 }
            var p = BatchPolicy(config: config)
            // An hour at 1,000 (or alternating 1,000 and 1,100), then 30 ticks falling 0.3% a
            // tick, which holds low-priority uploads (the slow-decay hold) in a calm market.
            for t in 0..<120 { #expect(p.tick(nowMs: Int64(t) * 30_000, baseFee: swings && t % 2 == 1 ? 1_100_000 : 1_000_000).isEmpty) }
            var fee: Int128 = 1_000_000
            var now: Int64 = 120 * 30_000
            for i in 0..<uploads { _ = p.enqueue(uploadId: "l\(i)", priority: .low, queuedAtMs: now) }
            fall(&p, ticks: 30, permille: 3, fee: &fee, now: &now)
            let batches = p.tick(nowMs: now, baseFee: fee * (100 + jump) / 100)
            let ids = (0..<uploads).map { "l\($0)" }
            #expect(batches == (sent ? [BatchPolicy.Batch(uploadIds: ids, reason: .spike)] : []),
                    "jump \(jump)%, swings \(swings), \(uploads) uploads, rule \(on ? "on" : "off")")
        }
        // Two base fees are too few to call a market calm: no spike before `historyLengthMin` (10).
        var fresh = BatchPolicy()
        for i in 0..<3 { _ = fresh.enqueue(uploadId: "f\(i)", priority: .low, queuedAtMs: 0) }
        #expect(fresh.tick(nowMs: 30_000, baseFee: 1_000).isEmpty)
        #expect(fresh.tick(nowMs: 60_000, baseFee: 1_000).isEmpty)
        #expect(fresh.tick(nowMs: 90_000, baseFee: 1_100).isEmpty)
    }

    /// A held upload still goes before its deadline, with the held uploads due within
    /// `holdGroupTicks` of it, in one message.
    @Test func heldUploadsGoTogetherBeforeTheirDeadline() {
        var config = BatchPolicy.Config()
        config.historyLengthMin = 3
        config.spikeJumpPercent = 0  // 1,000 → 5,003 would start a spike (rule 2b)
        var p = BatchPolicy(config: config)
        for t in 0..<3 { _ = p.tick(nowMs: Int64(t) * 30_000, baseFee: 1_000) }
        _ = p.enqueue(uploadId: "l1", priority: .low, queuedAtMs: 90_000)
        _ = p.enqueue(uploadId: "l2", priority: .low, queuedAtMs: 120_000)
        _ = p.enqueue(uploadId: "l3", priority: .low, queuedAtMs: 90_000 + 11 * 30_000)  // 11 ticks later
        let deadline: Int64 = 90_000 + 14_400_000
        var sent: [(Int64, BatchPolicy.Batch)] = []
        var now: Int64 = 90_000
        while now <= deadline + 20 * 30_000 {
            // Dearer at every tick, so always above the median.
            for b in p.tick(nowMs: now, baseFee: 5_000 + Int128(now / 30_000)) { sent.append((now, b)) }
            now += 30_000
        }
        #expect(sent.count == 2)
        #expect(sent.first?.0 == deadline - 30_000)
        #expect(sent.first?.1 == BatchPolicy.Batch(uploadIds: ["l1", "l2"], reason: .deadline))
        #expect(sent.last?.1.uploadIds == ["l3"])
    }

    /// `ticks` ticks 30 s apart from `now`, each at `fee`, none sending anything; `now` is left
    /// at the next tick's time.
    func wait(_ p: inout BatchPolicy, ticks: Int, fee: Int128, now: inout Int64) {
        for _ in 0..<ticks {
            #expect(p.tick(nowMs: now, baseFee: fee).isEmpty, "tick at \(now) ms")
            now += 30_000
        }
    }

    /// Quiet: an upload left alone when arrivals stop goes once no upload has been queued for an
    /// hour, at the first tick whose base fee is at or below the eight-hour median, rather than
    /// at its deadline 4 hours on (which may fall in a spike). An arrival starts the hour again,
    /// and the two go together.
    @Test func anUploadLeftAloneGoesAtTheMedianOnceTheQueueIsQuiet() {
        var p = policy()
        _ = p.enqueue(uploadId: "lone", priority: .low, queuedAtMs: 0)
        var now: Int64 = 30_000
        wait(&p, ticks: 119, fee: 1_000, now: &now)  // median 1,000; quiet from 3,600,000 ms
        #expect(now == 3_600_000)
        wait(&p, ticks: 1, fee: 1_001, now: &now)  // quiet, but above the median
        #expect(p.tick(nowMs: now, baseFee: 1_000) == [BatchPolicy.Batch(uploadIds: ["lone"], reason: .quiet)])
        #expect(p.queueLength == 0)

        var q = policy()
        _ = q.enqueue(uploadId: "a", priority: .low, queuedAtMs: 0)
        now = 30_000
        wait(&q, ticks: 59, fee: 1_000, now: &now)
        _ = q.enqueue(uploadId: "b", priority: .low, queuedAtMs: 1_790_000)  // the hour starts again
        wait(&q, ticks: 120, fee: 1_000, now: &now)  // quiet from 5,390,000 ms
        #expect(now == 5_400_000)
        #expect(q.tick(nowMs: now, baseFee: 1_000) == [BatchPolicy.Batch(uploadIds: ["a", "b"], reason: .quiet)])
    }

    /// The quiet rule leaves three or more waiting to the other rules (here, their deadline), and
    /// with `quietMs` 0 a lone upload waits for its deadline as well.
    @Test func theQuietRuleLeavesThreeWaitingAndCanBeTurnedOff() {
        for (count, quietMs) in [(3, Int64(3_600_000)), (1, 0)] {
            var config = BatchPolicy.Config()
            config.quietMs = quietMs
            var p = BatchPolicy(config: config)
            for i in 0..<count { _ = p.enqueue(uploadId: "u\(i)", priority: .low, queuedAtMs: 0) }
            var now: Int64 = 30_000
            wait(&p, ticks: 478, fee: 1_000, now: &now)
            #expect(now == 14_370_000)  // the 4-hour deadline passes before the next tick
            let sent = p.tick(nowMs: now, baseFee: 1_000)
            #expect(sent == [BatchPolicy.Batch(uploadIds: (0..<count).map { "u\($0)" }, reason: .deadline)])
        }
        var config = BatchPolicy.Config()
        config.quietMs = -1
        #expect(throws: CreditsError.self) { try config.validate(gas: .addPieces) }
    }

    @Test func configRefusesAHoldThatCouldMissADeadline() {
        var config = BatchPolicy.Config()
        config.holdGroupTicks = 0
        #expect(throws: CreditsError.self) { try config.validate(gas: .addPieces) }
        var decay = BatchPolicy.Config()
        decay.holdDecayTicks = decay.historyLengthMax + 1  // further back than the history kept
        #expect(throws: CreditsError.self) { try decay.validate(gas: .addPieces) }
    }

    @Test func configRefusesABatchOverAQuarterBlock() throws {
        var config = BatchPolicy.Config()
        config.itemsPerBatchMax = 30
        #expect(throws: CreditsError.self) { try config.validate(gas: .addPieces) }
        try BatchPolicy.Config().validate(gas: .addPieces)  // the defaults are valid
    }
}

@Suite struct RetryScheduleTests {
    @Test func backoffDoublesWithJitterAndIsCapped() {
        let r = RetrySchedule()
        #expect(r.delayMs(beforeAttempt: 2, jitterPPM: 0) == 15_000)
        #expect(r.delayMs(beforeAttempt: 2, jitterPPM: 999_999) < 30_000)
        #expect(r.delayMs(beforeAttempt: 3, jitterPPM: 0) == 30_000)
        #expect(r.delayMs(beforeAttempt: 30, jitterPPM: 500_000) <= r.delayMaxMs)
    }

    /// The doubling every retry shares: base·2^n up to the cap, never overflowing.
    @Test func doublingStopsAtItsCapWithoutOverflow() {
        #expect((0...5).map { RetrySchedule.doubledMs(30_000, times: $0, cappedAt: 600_000) }
                == [30_000, 60_000, 120_000, 240_000, 480_000, 600_000])
        #expect(RetrySchedule.doubledMs(1, times: 62, cappedAt: .max) == 1 << 62)
        #expect(RetrySchedule.doubledMs(1, times: 63, cappedAt: .max) == .max)
        #expect(RetrySchedule.doubledMs(3, times: 62, cappedAt: .max) == .max)
        #expect(RetrySchedule.doubledMs(500, times: 1_000, cappedAt: 86_400_000) == 86_400_000)
    }

    @Test func replacementPremiumIsAtLeastAQuarterMore() {
        // Lotus refuses a replacement below p + ⌊p·64/256⌋ + 1 (older mpool) or ⌊p·110/100⌋ + 1.
        #expect(RetrySchedule.replacementPremium(1_000_000) == 1_250_001)
        #expect(RetrySchedule.replacementPremium(1_000_001) == 1_250_002)
        for p: Int128 in [100_000, 100_003, 4_000_000_000, 123_456_789] {
            let r = RetrySchedule.replacementPremium(p)
            #expect(r * 4 > p * 5 && r >= p + p * 64 / 256 + 1 && r >= p * 110 / 100 + 1)
        }
        #expect(RetrySchedule.replacementPremium(10) == Filecoin.premiumFloor)
    }
}
