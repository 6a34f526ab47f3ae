import ArgumentParser
import CreditsCore
import CreditsStore
import Foundation

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create or migrate the database, then exit.")
    @OptionGroup var store: StoreOptions

    func run() async throws {
        let s = try await store.openStore()
        try await s.close()
        print("migrated \(store.databaseLocation)")
    }
}

struct Estimate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Price an upload (no database needed).")
    @Option(help: "audio, video or album") var fileType: String
    @Option(help: "Number of files.") var fileCount: Int = 1
    @Option(name: .customLong("feature"), help: "A feature; repeat for several.") var features: [String] = []
    @Option(help: "JSON catalog file.") var catalog: String?

    func run() async throws {
        let cat = try catalog.map(CatalogFile.load(path:)) ?? .default
        do {
            try printJSON(try Pricing.estimate(EstimateRequest(fileType: fileType, fileCount: fileCount, features: features), catalog: cat))
        } catch let error as CreditsError {
            throw ValidationError("\(error.field ?? ""): \(error.message)")
        }
    }
}

struct Balance: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a user's balances.")
    @OptionGroup var store: StoreOptions
    @Option(help: "The user id.") var userId: String

    /// Before the database is opened (and, for a SQLite file, created).
    func validate() throws {
        do {
            try Identifier.check(userId, field: "--user-id")
        } catch {
            throw ValidationError("\(error.field ?? ""): \(error.message)")
        }
    }

    func run() async throws {
        let s = try await store.openStore(create: false)
        do {
            let credits = try await s.balance(userId: userId)
            try await s.close()
            try printJSON(credits)
        } catch {
            try? await s.close()
            throw error
        }
    }
}

struct Expire: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Move the unspent credits of expired lots to the expiry account (serve also does it daily).")
    @OptionGroup var store: StoreOptions

    func run() async throws {
        let s = try await store.openStore(create: false)
        do {
            let swept = try await CreditManager(store: s).expireCredits(nowMs: WallClock.system.nowMs())
            try await s.close()
            print("expired \(swept.credits) credits of \(swept.users) users")
        } catch {
            try? await s.close()
            throw error
        }
    }
}

struct Reconcile: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every ledger invariant; exit 1 naming the first broken account.")
    @OptionGroup var store: StoreOptions

    func run() async throws {
        let s = try await store.openStore(create: false)
        let report = try await s.reconcile()
        try await s.close()
        if report.ok {
            print("ok: \(report.accountsChecked) accounts, \(report.journalRows) journal rows, every invariant holds")
            return
        }
        for problem in report.problems { print("BROKEN \(problem)") }
        throw ExitCode(1)
    }
}
