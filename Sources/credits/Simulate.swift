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
    @Option(help: "Share of messages that are stuck (never land unless replaced), 0...1.") var stuckRate = "0"
    @Option(help: "Share of chain calls that fail with a retryable RPC error, 0...1.") var rpcErrorRate = "0"
    @OptionGroup var policy: PolicyOptions
    @Option(help: "Model policy: days of the market's base fees handed to the policy before the run (0...30), drawn from another seed.") var historyDays = 7
    @Flag(help: "Busy: start the day at calm's base fee, so it climbs all day toward busy's level (the busy trace before 2026-12-01).") var startAtCalmLevel = false
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Write the run's base-fee trace and upload windows as JSON to this file (for scripts/online-bound).") var dump: String?

    func validate() throws {
        guard (1...30).contains(days) else { throw ValidationError("--days: 1...30") }
        if let hours, !(1...720).contains(hours) { throw ValidationError("--hours: 1...720") }
        guard (1...10_000).contains(uploadsPerHour) else { throw ValidationError("--uploads-per-hour: 1...10000") }
        guard SimulatedChain.Trace(rawValue: trace) != nil else { throw ValidationError("--trace: calm, busy or spiky") }
        guard BaseFeeRule(rawValue: rule) != nil else { throw ValidationError("--rule: pre-nv28 or fip0115") }
        guard (0...30).contains(historyDays) else { throw ValidationError("--history-days: 0...30") }
        for (name, value) in [("--failure-rate", failureRate), ("--stuck-rate", stuckRate), ("--rpc-error-rate", rpcErrorRate)] {
            guard let r = DecimalRate(value), r.nanos <= 1_000_000_000 else { throw ValidationError("\(name): 0...1") }
        }
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
        config.stuckRatePPM = Int64(DecimalRate(stuckRate)!.nanos / 1_000)
        config.rpcErrorRatePPM = Int64(DecimalRate(rpcErrorRate)!.nanos / 1_000)
        policy.apply(to: &config.policy)
        config.dumpPath = dump
        config.historyDays = historyDays

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
                trace \(r.trace), policy \(policy.batchPolicy), \(hours.map { "\($0) hour(s)" } ?? "\(r.days) day(s)"), \(uploadsPerHour) uploads/hour, seed \(seed), rule \(rule), failure rate \(failureRate)\(stuckRate == "0" && rpcErrorRate == "0" ? "" : ", stuck rate \(stuckRate), RPC error rate \(rpcErrorRate)")
                base fee (attoFIL/gas)  min \(r.baseFeeMin), median \(r.baseFeeMedian), max \(r.baseFeeMax)
                uploads                 \(r.uploads)
                batches (confirmed)     \(r.batches), mean size K = \(String(format: "%.2f", Double(r.meanBatchSizeHundredths) / 100))
                individual gas cost     \(r.individualCostAttoFil) attoFIL
                actual gas cost         \(r.actualCostAttoFil) attoFIL
                batching savings        \(pct(r.batchingSavingsPPM)) (model at the achieved sizes: \(pct(r.modelBatchingSavingsPPM)))
                timing savings          \(pct(r.timingSavingsPPM)) (vs. each upload's share at the base fee when it was queued)
                deadline misses         \(r.deadlineMisses)
                failed messages         \(r.failedMessages)
                uploads settled         \(r.confirmedUploads) confirmed, \(r.refundedUploads) refunded, \(r.unsettledUploads) neither
                landed messages         \(r.confirmedNotInOneMessage) confirmed uploads not in exactly one, \(r.storedAfterRefund) refunded uploads stored after the refund
                refunds                 \(r.refundedUploads) uploads, \(r.refundedCredits) credits; holds released \(r.releasedCredits) credits, still held \(r.creditsHeldAtEnd)
                hindsight schedule      \(r.hindsightCostAttoFil) attoFIL
                actual / hindsight      \(String(format: "%.3f", Double(r.ratioToHindsightPPM) / 1_000_000))
                settlement              \(r.settledOk ? "ok" : "BROKEN") (every upload confirmed in one message or refunded, refunds = holds released)
                ledger reconcile        \(r.reconcileOk ? "ok" : "BROKEN")
                simulated in            \(elapsed)
                """)
        }
        if !r.reconcileOk || !r.settledOk { throw ExitCode(1) }
    }
}
