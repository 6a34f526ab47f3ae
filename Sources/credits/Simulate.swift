import ArgumentParser
import CreditsChain
import CreditsCore
import CreditsWorker
import Foundation

struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the batching policy, gas manager and ledger on virtual time against the simulated chain.",
        discussion: "Compares the cost with individual messages, with sending at once, and with a hindsight schedule.")

    @Option(help: "Simulated days.") var days = 1
    @Option(help: "Simulated hours instead of days (1...720).") var hours: Int?
    @Option(help: "Uploads per hour.") var uploadsPerHour = 120
    @Option(help: "Demand trace: calm, busy or spiky.") var trace = "calm"
    @Option(help: "Base-fee rule: pre-nv28 or fip0115.") var rule = "pre-nv28"
    @Option(help: "Seed.") var seed: UInt64 = 1
    @Option(help: "Share of messages that revert, 0...1 (e.g. 0.3).") var failureRate = "0"
    @Option(help: "Policy: send early at or below this percentile of the last hour's base fees.") var cheapPercentile = 20
    @Option(help: "Policy: uploads needed before cheap gas alone sends a batch.") var cheapBatchMin = 16
    @Option(help: "Policy: send when the base fee climbed this many percent over --rise-window ticks (0: off).") var risePercent = 0
    @Option(help: "Policy: ticks the climb is measured over.") var riseWindow = 10
    @Option(help: "Policy: uploads needed before a base fee back at their queue price sends them (0: off).") var queuePriceBatchMin = 0
    @Option(help: "Policy: epochs of base-fee history remembered.") var historyEpochs = 120
    @Option(help: "Policy: hold low-priority uploads while the base fee is above this percent of the recent median (0: off).") var holdAbovePercent = 100
    @Option(help: "Policy: epochs the hold's median is taken over.") var holdReferenceEpochs = 960
    @Option(help: "Policy: ticks before its deadline a held upload joins batches again (at least 1).") var holdGroupTicks = 10
    @Option(help: "Policy: above the median, also hold medium-priority uploads while the base fee is this many percent or more below the last tick's (0: off).")
    var holdFallPercent = 1
    @Option(help: "Policy: in a volatile market, hold a low-priority upload with k ticks left unless the base fee is at or below median·exp(-c·σ·√k), c = this/1000 (0: off).")
    var holdVolatilityPermille = 300
    @Option(help: "Policy: the per-tick swing σ, in thousandths, from which a market counts as volatile.")
    var holdVolatilityMinPermille = 15
    @Option(help: "Policy: in a market that is not volatile, hold low-priority uploads below the median too while the base fee is this many percent or more below its level --hold-decay-ticks ago (0: off).")
    var holdDecayPercent = 6
    @Option(help: "Policy: ticks the decay is measured over.") var holdDecayTicks = 30
    @Option(help: "Policy: in a market that is not volatile, a base fee this many percent above the last tick's starts a spike: everything waiting goes (0: off).")
    var spikeJumpPercent = 5
    @Flag(help: "Busy: start the day at calm's base fee, so it climbs all day toward busy's level (the busy trace before 2026-12-01).") var startAtCalmLevel = false
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Write the run's base-fee trace and upload windows as JSON to this file (for scripts/online-bound).") var dump: String?

    func validate() throws {
        guard (1...30).contains(days) else { throw ValidationError("--days: 1...30") }
        if let hours, !(1...720).contains(hours) { throw ValidationError("--hours: 1...720") }
        guard (1...10_000).contains(uploadsPerHour) else { throw ValidationError("--uploads-per-hour: 1...10000") }
        guard SimulatedChain.Trace(rawValue: trace) != nil else { throw ValidationError("--trace: calm, busy or spiky") }
        guard BaseFeeRule(rawValue: rule) != nil else { throw ValidationError("--rule: pre-nv28 or fip0115") }
        guard let r = DecimalRate(failureRate), r.nanos <= 1_000_000_000 else { throw ValidationError("--failure-rate: 0...1") }
    }

    func run() async throws {
        var config = Simulation.Config()
        config.days = days
        config.hours = hours
        config.uploadsPerHour = uploadsPerHour
        config.trace = SimulatedChain.Trace(rawValue: trace)!
        config.startAtCalmLevel = startAtCalmLevel
        config.rule = BaseFeeRule(rawValue: rule)!
        config.seed = seed
        config.failureRatePPM = Int64(DecimalRate(failureRate)!.nanos / 1_000)
        config.policy.cheapPercentile = cheapPercentile
        config.policy.cheapBatchMin = cheapBatchMin
        config.policy.risePercent = risePercent
        config.policy.riseWindowTicks = riseWindow
        config.policy.queuePriceBatchMin = queuePriceBatchMin
        config.policy.historyLengthMax = historyEpochs
        config.policy.holdAbovePercent = holdAbovePercent
        config.policy.holdReferenceEpochs = holdReferenceEpochs
        config.policy.holdGroupTicks = holdGroupTicks
        config.policy.holdFallPercent = holdFallPercent
        config.policy.holdVolatilityPermille = holdVolatilityPermille
        config.policy.holdVolatilityMinPermille = holdVolatilityMinPermille
        config.policy.holdDecayPercent = holdDecayPercent
        config.policy.holdDecayTicks = holdDecayTicks
        config.policy.spikeJumpPercent = spikeJumpPercent
        config.dumpPath = dump

        config.policy.historyLengthMin = min(config.policy.historyLengthMin, historyEpochs)
        do {
            try config.policy.validate(gas: .addPieces)
        } catch {
            throw ValidationError("\(error.field ?? ""): \(error.message)")
        }
        let path = NSTemporaryDirectory() + "credits-sim-\(UUID().uuidString).sqlite"
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        let started = ContinuousClock.now
        let r = try await Simulation.run(config, databasePath: path)
        let elapsed = ContinuousClock.now - started
        if json {
            try printJSON(r)
        } else {
            func pct(_ ppm: Int64) -> String { String(format: "%.2f%%", Double(ppm) / 10_000) }
            print("""
                trace \(r.trace), \(hours.map { "\($0) hour(s)" } ?? "\(r.days) day(s)"), \(uploadsPerHour) uploads/hour, seed \(seed), rule \(rule), failure rate \(failureRate)
                base fee (attoFIL/gas)  min \(r.baseFeeMin), median \(r.baseFeeMedian), max \(r.baseFeeMax)
                uploads                 \(r.uploads)
                batches (confirmed)     \(r.batches), mean size K = \(String(format: "%.2f", Double(r.meanBatchSizeHundredths) / 100))
                individual gas cost     \(r.individualCostAttoFil) attoFIL
                actual gas cost         \(r.actualCostAttoFil) attoFIL
                batching savings        \(pct(r.batchingSavingsPPM)) (model at the achieved sizes: \(pct(r.modelBatchingSavingsPPM)))
                timing savings          \(pct(r.timingSavingsPPM)) (vs. each upload's share at the base fee when it was queued)
                deadline misses         \(r.deadlineMisses)
                failed messages         \(r.failedMessages)
                refunds                 \(r.refundedUploads) uploads, \(r.refundedCredits) credits
                hindsight schedule      \(r.hindsightCostAttoFil) attoFIL
                actual / hindsight      \(String(format: "%.3f", Double(r.ratioToHindsightPPM) / 1_000_000))
                ledger reconcile        \(r.reconcileOk ? "ok" : "BROKEN")
                simulated in            \(elapsed)
                """)
        }
        if !r.reconcileOk { throw ExitCode(1) }
    }
}
