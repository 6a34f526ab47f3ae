import ArgumentParser
import CreditsCore
import CreditsStore
import Foundation

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure durable spends/s through the store and estimates/s.",
        discussion: """
            Spends: --clients concurrent in-process clients each await one durable spend at a time, \
            against a fresh database (a temporary file unless --database is given). Every spend is \
            acknowledged only after its commit is on disk (synchronous=FULL).
            """)

    @Option(help: "Concurrent clients.") var clients = 64
    @Option(help: "Spends in all.") var spends = 100_000
    @Option(help: "Users the spends are spread over.") var users = 1_000
    @Option(help: "Estimates to time.") var estimates = 1_000_000
    @Option(help: "SQLite file or postgres:// URL (default: a new temporary SQLite file, removed afterwards). The bench adds its own users and spends, under ids unique to the run.") var database: String?

    func validate() throws {
        guard (1...4096).contains(clients) else { throw ValidationError("--clients must be 1...4096") }
        guard (1...10_000_000).contains(spends) else { throw ValidationError("--spends must be 1...10000000") }
        guard (1...1_000_000).contains(users) else { throw ValidationError("--users must be 1...1000000") }
        // Until 2026-12-05 unchecked: a negative count trapped after the spends had run.
        guard (1...1_000_000_000).contains(estimates) else { throw ValidationError("--estimates must be 1...1000000000") }
    }

    func run() async throws {
        MemoryTuning.apply()
        let path = database ?? NSTemporaryDirectory() + "credits-bench-\(UUID().uuidString).sqlite"
        defer {
            if database == nil {
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            }
        }
        let store = try await StoreOptions.open(path)
        if let sqlite = store as? SQLiteStore {
            let durability = try sqlite.durabilitySettings()
            print("store: SQLite \(path) (journal_mode=\(durability.journalMode), synchronous=\(durability.synchronous == 2 ? "FULL" : String(durability.synchronous)))")
        } else {
            print("store: PostgreSQL \(PostgresStore.redacted(path))")
        }
        let run = UUID().uuidString.prefix(8)

        // Fund every user with enough for their share of spends, in concurrent adjustments.
        let perUser = Int64(spends / users + 2)
        try await runConcurrently(count: users, clients: clients) { i in
            _ = try await store.execute(
                .adjust(AdjustmentRequest(userId: "bench_\(run)_u\(i)", credits: perUser, adjustmentId: "bench_\(run)_fund_\(i)", reason: "bench")),
                idempotencyKey: nil)
        }

        let start = ContinuousClock.now
        let latencies = try await runConcurrently(count: spends, clients: clients) { i in
            let result = try await store.execute(
                .spend(SpendRequest(userId: "bench_\(run)_u\(i % users)", credits: 1, fileUploadId: "bench_\(run)_s\(i)")),
                idempotencyKey: nil)
            guard case .spent = result.outcome else { throw ValidationError("spend \(i) was not applied: \(result.outcome)") }
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let sorted = latencies.sorted()
        print(String(format: "spends: %d durable spends by %d clients in %.2f s = %.0f spends/s (latency p50 %.2f ms, p99 %.2f ms)",
                     spends, clients, seconds, Double(spends) / seconds,
                     sorted[sorted.count / 2] * 1000, sorted[min(sorted.count - 1, sorted.count * 99 / 100)] * 1000))

        let report = try await store.reconcile()
        print("reconcile: \(report.ok ? "ok" : "BROKEN \(report.problems.first ?? "")") (\(report.journalRows) journal rows)")
        try await store.close()

        let catalog = Catalog.default
        let request = EstimateRequest(fileType: "audio", fileCount: 5, features: ["premium_encryption", "quality_variants"])
        var checksum: Int64 = 0
        let estStart = ContinuousClock.now
        for _ in 0..<estimates { checksum &+= try Pricing.estimate(request, catalog: catalog).credits }
        let estElapsed = ContinuousClock.now - estStart
        let estSeconds = Double(estElapsed.components.seconds) + Double(estElapsed.components.attoseconds) / 1e18
        print(String(format: "estimates: %d in %.2f s = %.0f estimates/s on one core (checksum %lld)",
                     estimates, estSeconds, Double(estimates) / estSeconds, checksum))
        if !report.ok { throw ExitCode(1) }
    }

    /// Runs `count` jobs with at most `clients` in flight; returns each job's latency in seconds.
    @discardableResult
    private func runConcurrently(count: Int, clients: Int, _ job: @escaping @Sendable (Int) async throws -> Void) async throws -> [Double] {
        try await withThrowingTaskGroup(of: [Double].self) { group in
            for c in 0..<clients {
                group.addTask {
                    var latencies: [Double] = []
                    var i = c
                    while i < count {
                        let t0 = ContinuousClock.now
                        try await job(i)
                        let d = ContinuousClock.now - t0
                        latencies.append(Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
                        i += clients
                    }
                    return latencies
                }
            }
            var all: [Double] = []
            for try await part in group { all += part }
            return all
        }
    }
}
