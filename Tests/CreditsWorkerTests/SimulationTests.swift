import CreditsChain
import CreditsCore
import CreditsTestSupport
import CreditsWorker
import Testing

/// `credits simulate` on each trace, shortened to a few virtual hours.
@Suite struct SimulationTests {
    @Test(arguments: SimulatedChain.Trace.allCases)
    func noDeadlineMissAndSavingsMatchTheModel(trace: SimulatedChain.Trace) async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        var config = Simulation.Config()
        config.trace = trace
        config.hours = 3
        config.uploadsPerHour = 240
        config.seed = 3
        let r = try await Simulation.run(config, databasePath: dir.path + "/sim.sqlite")
        #expect(r.uploads == 720)
        #expect(r.deadlineMisses == 0)
        #expect(r.batches > 0 && r.meanBatchSizeHundredths >= 300)
        // Measured from receipts, within one percentage point of f(1 − 1/K) at the sizes achieved.
        #expect(abs(r.batchingSavingsPPM - r.modelBatchingSavingsPPM) <= 10_000)
        #expect(r.batchingSavingsPPM > 400_000)
        #expect(r.reconcileOk)
    }

    @Test func withFailuresEveryUploadIsSettledAndTheLedgerReconciles() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        var config = Simulation.Config()
        config.trace = .spiky
        config.hours = 2
        config.failureRatePPM = 300_000
        let r = try await Simulation.run(config, databasePath: dir.path + "/sim.sqlite")
        #expect(r.failedMessages > 0)
        #expect(r.reconcileOk)
    }
}
