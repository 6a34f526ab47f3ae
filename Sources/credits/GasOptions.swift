import ArgumentParser
import CreditsChain
import CreditsCore
import CreditsLotus
import Foundation
import CreditsStore
import CreditsWorker
import Logging

/// The chain the gas manager talks to, and its settings.
struct GasOptions: ParsableArguments {
    @Option(help: "Chain to use: simulated, or lotus (a Lotus node's JSON-RPC API; token from LOTUS_TOKEN).")
    var chain = "simulated"
    @Option(help: "Simulated demand: calm, busy or spiky.") var chainTrace = "calm"
    @Option(help: "Base-fee rule of the simulated chain: pre-nv28 or fip0115.") var chainRule = "pre-nv28"
    @Option(help: "Seed of the simulated chain.") var chainSeed: UInt64 = 1
    @Option(help: "Epoch length of the simulated chain in ms (Filecoin: 30000; shorter for a quick demo).")
    var chainEpochMs: Int64 = 30_000
    @Option(help: "Percent of simulated messages that revert.") var chainRevertPercent: Int64 = 0
    @Option(help: "Percent of simulated messages that are stuck (never land unless replaced).") var chainStuckPercent: Int64 = 0
    @Option(help: "Percent of simulated chain calls that fail with a retryable RPC error.") var chainRpcErrorPercent: Int64 = 0
    @Option(help: "Gas manager tick in ms (default: one epoch).") var workerTickMs: Int64?
    @Option(help: "FIL/USD rate for gas-stats, a decimal.") var filUsd = "5.00"
    @Option(help: "Lotus API base URL (--chain lotus), e.g. http://127.0.0.1:1234; /rpc/v1 is appended.") var lotusUrl: String?
    @Option(help: "Sending wallet address, held by the Lotus node (--chain lotus).") var lotusFrom: String?
    @Option(help: "Actor address the batches call (--chain lotus).") var lotusTo: String?
    @Option(help: "Actor method number of a batch (--chain lotus).") var lotusMethod: Int64 = 0
    @Option(help: "Most one message may cost, in attoFIL (Lotus MaxFee).") var lotusMaxFee = "1000000000000000"
    @Option(help: "Epochs a message must be buried under before it counts (--chain lotus).") var lotusConfidence: Int64 = 5
    @Option(help: "Heights asked at once for the model policy's base-fee history at start (--chain lotus).")
    var lotusHistoryConcurrency = 4
    @Option(help: "Model policy: at start, ask the chain for the base fees of this many recent epochs (0: none, the rules then decide for a day; a week is 20160).")
    var modelHistoryEpochs = 2_880
    @OptionGroup var policy: PolicyOptions

    var tickMs: Int64 { workerTickMs ?? chainEpochMs }

    func validate() throws {
        guard chain == "simulated" || chain == "lotus" else { throw ValidationError("--chain: simulated or lotus") }
        if chain == "lotus" {
            guard let lotusUrl, lotusUrl.hasPrefix("http://") || lotusUrl.hasPrefix("https://") else {
                throw ValidationError("--chain lotus needs --lotus-url http(s)://host:port")
            }
            guard lotusFrom?.isEmpty == false, lotusTo?.isEmpty == false else {
                throw ValidationError("--chain lotus needs --lotus-from (the sending wallet) and --lotus-to (the actor called)")
            }
            guard let fee = Int128(lotusMaxFee, radix: 10), fee > 0 else { throw ValidationError("--lotus-max-fee: attoFIL, a whole number > 0") }
            guard lotusMethod >= 0 else { throw ValidationError("--lotus-method: an actor method number, 0 or more") }
            guard (0...900).contains(lotusConfidence) else { throw ValidationError("--lotus-confidence: 0...900") }
            guard (1...8).contains(lotusHistoryConcurrency) else { throw ValidationError("--lotus-history-concurrency: 1...8 (the HTTP client's connections to a host)") }
        }
        guard SimulatedChain.Trace(rawValue: chainTrace) != nil else { throw ValidationError("--chain-trace: calm, busy or spiky") }
        guard BaseFeeRule(rawValue: chainRule) != nil else { throw ValidationError("--chain-rule: pre-nv28 or fip0115") }
        guard (100...3_600_000).contains(chainEpochMs) else { throw ValidationError("--chain-epoch-ms: 100...3600000") }
        guard (0...100).contains(chainRevertPercent) else { throw ValidationError("--chain-revert-percent: 0...100") }
        guard (0...100).contains(chainStuckPercent) else { throw ValidationError("--chain-stuck-percent: 0...100") }
        guard (0...100).contains(chainRpcErrorPercent) else { throw ValidationError("--chain-rpc-error-percent: 0...100") }
        if let workerTickMs, !(100...3_600_000).contains(workerTickMs) { throw ValidationError("--worker-tick-ms: 100...3600000") }
        guard DecimalRate(filUsd) != nil else { throw ValidationError("--fil-usd: a decimal like 5.00") }
        let kept = BatchPolicy.ModelConfig().historyEpochs
        guard (0...kept).contains(modelHistoryEpochs) else { throw ValidationError("--model-history-epochs: 0...\(kept) (the base fees the model keeps)") }
    }

    /// - Parameter instance: what names this instance across restarts (host and port), so that
    ///   its manager recognises its own batches when it starts again.
    func makeManager(store: any CreditStore, clock: WallClock, logger: Logger, instance: String) async throws -> FilecoinGasManager {
        var config = FilecoinGasManager.Config()
        config.instanceTag = Self.tag(instance)
        policy.apply(to: &config.policy)
        config.policy.model?.historyAtStartEpochs = modelHistoryEpochs
        config.policy.tickMs = tickMs
        config.policy.deadlineMs = config.policy.deadlineMs.mapValues { max($0, 2 * tickMs) }
        config.usdPerFil = DecimalRate(filUsd)!
        do {
            try config.policy.validate(gas: config.gas)
        } catch {
            throw ValidationError("\(error.field ?? ""): \(error.message)")
        }
        let client: any ChainClient
        if chain == "lotus" {
            client = try await lotusChain(logger: logger)
            // A message waits `confidence` epochs after it lands: only later is it stuck.
            config.stuckAfterEpochs = max(config.stuckAfterEpochs, lotusConfidence + 4)
        } else {
            var chainConfig = SimulatedChain.Config()
            chainConfig.trace = SimulatedChain.Trace(rawValue: chainTrace)!
            chainConfig.rule = BaseFeeRule(rawValue: chainRule)!
            chainConfig.seed = chainSeed
            chainConfig.epochMs = chainEpochMs
            chainConfig.revertRatePPM = chainRevertPercent * 10_000
            chainConfig.stuckRatePPM = chainStuckPercent * 10_000
            chainConfig.rpcErrorRatePPM = chainRpcErrorPercent * 10_000
            chainConfig.genesisMs = clock.nowMs()
            client = SimulatedChain(config: chainConfig, clock: clock)
        }
        return FilecoinGasManager(store: store, chain: client, clock: clock, config: config, logger: logger)
    }

    /// The Lotus adapter, after one ChainHead proved the node answers and takes the token.
    private func lotusChain(logger: Logger) async throws -> LotusChain {
        guard let token = ProcessInfo.processInfo.environment["LOTUS_TOKEN"], !token.isEmpty else {
            throw StartupError(description: "--chain lotus needs the node's API token (with sign permission) in LOTUS_TOKEN")
        }
        var config = LotusChain.Config(url: lotusUrl!, token: token, from: lotusFrom!, to: lotusTo!)
        config.method = lotusMethod
        config.maxFee = Int128(lotusMaxFee, radix: 10)!
        config.confidence = lotusConfidence
        config.historyConcurrency = lotusHistoryConcurrency
        let probe = config
        var quick = probe
        quick.callTimeoutMs = 5_000
        do {
            let head = try await LotusChain(config: quick, logger: logger).head()
            logger.info("Lotus node reachable", metadata: ["height": "\(head.height)", "baseFee": "\(head.baseFee)"])
        } catch let e as ChainError {
            let why = e.retryable ? "cannot reach the Lotus node at \(probe.url)" : "the Lotus node at \(probe.url) refused the request"
            throw StartupError(description: "\(why): \(e.message)")
        }
        return LotusChain(config: probe, logger: logger)
    }
}

extension GasOptions {
    /// FNV-1a of the instance's name, in hex: short, stable, and the same after a restart.
    static func tag(_ instance: String) -> String {
        var h: UInt32 = 2_166_136_261
        for b in instance.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        return String(h, radix: 16)
    }
}

/// A start-up failure with a plain message (no usage text: the arguments were fine).
struct StartupError: Error, CustomStringConvertible {
    var description: String
}
