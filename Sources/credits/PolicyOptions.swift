import ArgumentParser
import CreditsCore

/// The batch policy's knobs, for `serve` and `simulate` alike (`BatchPolicy.Config` says what
/// each does; the defaults are its defaults).
struct PolicyOptions: ParsableArguments {
    @Option(help: "Policy: rules, or model (decide with a model of the market fitted to the base fees seen, once it has a day of them; the rules below decide until then).")
    var batchPolicy = "model"
    @Option(help: "Model policy: an upload still waiting at its deadline counts this share (per mille) of a message's fixed gas more.") var modelAlonePermille = 250
    @Option(help: "Model policy: riders' gains, per mille of a message's fixed gas, that open a message.") var modelOpenPermille = 1_500
    @Option(help: "Model policy: the most, per mille, the model counts on a message to ride each tick (the share of ticks with a high-priority upload, capped).") var modelChanceMaxPermille = 250
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
    @Option(help: "Policy: once no upload has been queued for this many minutes, those waiting go together: in the model mode when its stopping rule says so, in the rule mode (fewer than 3) at the first base fee at or below the median (0: off).")
    var quietMinutes = 60

    /// `BatchPolicy.Config.quietMsMax` in minutes (43,200).
    static let quietMinutesMax = Int(BatchPolicy.Config.quietMsMax / 60_000)

    /// The knobs checked together, before anything starts (no database is opened with a bad one).
    func validate() throws {
        guard ["rules", "model"].contains(batchPolicy) else { throw ValidationError("--batch-policy: rules or model") }
        // In minutes here, in milliseconds in the config: said in the flag's own unit.
        guard (0...Self.quietMinutesMax).contains(quietMinutes) else {
            throw ValidationError("--quiet-minutes: must be 0...\(Self.quietMinutesMax) (30 days)")
        }
        var config = BatchPolicy.Config()
        apply(to: &config)
        do {
            try config.validate(gas: .addPieces)
        } catch {
            throw ValidationError("\(error.field ?? ""): \(error.message)")
        }
    }

    /// Sets the knobs on `config`; `BatchPolicy.Config.validate` then checks them together.
    func apply(to config: inout BatchPolicy.Config) {
        if batchPolicy == "model" {
            var model = BatchPolicy.ModelConfig()
            model.alonePermille = modelAlonePermille
            model.openPermille = modelOpenPermille
            model.messageChanceMaxPermille = modelChanceMaxPermille
            config.model = model
        }
        config.cheapPercentile = cheapPercentile
        config.cheapBatchMin = cheapBatchMin
        config.risePercent = risePercent
        config.riseWindowTicks = riseWindow
        config.queuePriceBatchMin = queuePriceBatchMin
        config.historyLengthMax = historyEpochs
        config.holdAbovePercent = holdAbovePercent
        config.holdReferenceEpochs = holdReferenceEpochs
        config.holdGroupTicks = holdGroupTicks
        config.holdFallPercent = holdFallPercent
        config.holdVolatilityPermille = holdVolatilityPermille
        config.holdVolatilityMinPermille = holdVolatilityMinPermille
        config.holdDecayPercent = holdDecayPercent
        config.holdDecayTicks = holdDecayTicks
        config.spikeJumpPercent = spikeJumpPercent
        // Clamped just outside the range so that the product cannot overflow; `validate` refuses it.
        config.quietMs = Int64(min(max(quietMinutes, -1), Self.quietMinutesMax + 1)) * 60_000
        config.historyLengthMin = min(config.historyLengthMin, historyEpochs)
    }
}
