import ArgumentParser
import CreditsChain
import CreditsCore
import CreditsStore
import CreditsWorker
import Logging

/// The chain the gas manager talks to, and its settings.
struct GasOptions: ParsableArguments {
    @Option(help: "Chain to use: simulated (a Lotus adapter is planned).") var chain = "simulated"
    @Option(help: "Simulated demand: calm, busy or spiky.") var chainTrace = "calm"
    @Option(help: "Base-fee rule of the simulated chain: pre-nv28 or fip0115.") var chainRule = "pre-nv28"
    @Option(help: "Seed of the simulated chain.") var chainSeed: UInt64 = 1
    @Option(help: "Epoch length of the simulated chain in ms (Filecoin: 30000; shorter for a quick demo).")
    var chainEpochMs: Int64 = 30_000
    @Option(help: "Percent of simulated messages that revert.") var chainRevertPercent: Int64 = 0
    @Option(help: "Gas manager tick in ms (default: one epoch).") var workerTickMs: Int64?
    @Option(help: "FIL/USD rate for gas-stats, a decimal.") var filUsd = "5.00"

    var tickMs: Int64 { workerTickMs ?? chainEpochMs }

    func validate() throws {
        guard chain == "simulated" else { throw ValidationError("--chain: only 'simulated' is available yet") }
        guard SimulatedChain.Trace(rawValue: chainTrace) != nil else { throw ValidationError("--chain-trace: calm, busy or spiky") }
        guard BaseFeeRule(rawValue: chainRule) != nil else { throw ValidationError("--chain-rule: pre-nv28 or fip0115") }
        guard (100...3_600_000).contains(chainEpochMs) else { throw ValidationError("--chain-epoch-ms: 100...3600000") }
        guard (0...100).contains(chainRevertPercent) else { throw ValidationError("--chain-revert-percent: 0...100") }
        if let workerTickMs, !(100...3_600_000).contains(workerTickMs) { throw ValidationError("--worker-tick-ms: 100...3600000") }
        guard DecimalRate(filUsd) != nil else { throw ValidationError("--fil-usd: a decimal like 5.00") }
    }

    func makeManager(store: any CreditStore, clock: WallClock, logger: Logger) throws -> FilecoinGasManager {
        var chainConfig = SimulatedChain.Config()
        chainConfig.trace = SimulatedChain.Trace(rawValue: chainTrace)!
        chainConfig.rule = BaseFeeRule(rawValue: chainRule)!
        chainConfig.seed = chainSeed
        chainConfig.epochMs = chainEpochMs
        chainConfig.revertRatePPM = chainRevertPercent * 10_000
        chainConfig.genesisMs = clock.nowMs()
        var config = FilecoinGasManager.Config()
        config.policy.tickMs = tickMs
        config.policy.deadlineMs = config.policy.deadlineMs.mapValues { max($0, 2 * tickMs) }
        config.usdPerFil = DecimalRate(filUsd)!
        do {
            try config.policy.validate(gas: config.gas)
        } catch {
            throw ValidationError("\(error.field ?? ""): \(error.message)")
        }
        return FilecoinGasManager(
            store: store, chain: SimulatedChain(config: chainConfig, clock: clock), clock: clock, config: config, logger: logger)
    }
}
