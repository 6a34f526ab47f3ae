import ArgumentParser
import CreditsCore
import CreditsStore
import Foundation
import Logging

/// `--database` and `--catalog`, shared by every subcommand that opens the ledger.
struct StoreOptions: ParsableArguments {
    @Option(help: "SQLite file path or postgres://user:pass@host:port/db (serve, migrate and bench create the ledger on first use; balance, expire and reconcile need one). Default: $CREDITS_DATABASE or ./credits.sqlite")
    var database: String?

    @Option(help: "JSON catalog file replacing the built-in packages and prices.")
    var catalog: String?

    @Option(help: "Days promotional credits (bonuses, milestones, operator grants) live before they expire; paid credits never do.")
    var promotionalExpiryDays: Int64 = 365

    func validate() throws {
        guard (1...36_500).contains(promotionalExpiryDays) else { throw ValidationError("--promotional-expiry-days: 1...36500") }
    }

    var lotRules: LotRules { LotRules(promotionalLifetimeDays: promotionalExpiryDays) }

    var databaseLocation: String {
        database ?? ProcessInfo.processInfo.environment["CREDITS_DATABASE"] ?? "./credits.sqlite"
    }

    func loadCatalog() throws -> Catalog {
        guard let catalog else { return .default }
        return try CatalogFile.load(path: catalog)
    }

    /// Opens the ledger; with `create` false (the tools that read or repair one), a location
    /// without a ledger stops the command instead of becoming a new, empty ledger.
    func openStore(create: Bool = true) async throws -> any CreditStore {
        do {
            return try await StoreOptions.open(databaseLocation, catalog: loadCatalog(), lots: lotRules, create: create)
        } catch let error as NoLedgerError {
            throw StartupError(description: "\(error.description) (check --database or CREDITS_DATABASE; `credits migrate` or `credits serve` creates a ledger)")
        }
    }

    /// A SQLite file path or a PostgreSQL URL.
    static func open(_ location: String, catalog: Catalog = .default, lots: LotRules = .init(), create: Bool = true) async throws -> any CreditStore {
        if location.hasPrefix("postgres://") || location.hasPrefix("postgresql://") {
            var logger = Logger(label: "credits.postgres")
            logger.logLevel = .warning
            return try await PostgresStore(url: location, catalog: catalog, lots: lots, logger: logger, create: create)
        }
        do {
            return try SQLiteStore(path: location, catalog: catalog, lots: lots, create: create)
        } catch let error as NoLedgerError {
            throw error
        } catch {
            // SQLite's own message names no path ("unable to open database file").
            let folder = URL(fileURLWithPath: location).deletingLastPathComponent().path
            let hint = FileManager.default.fileExists(atPath: folder) ? "" : " (the folder \(folder) does not exist)"
            throw StartupError(description: "cannot open the SQLite database at \(location): \(error)\(hint)")
        }
    }
}

enum CatalogFile {
    /// Reads and validates a catalog; the error names the file and the bad field.
    static func load(path: String) throws -> Catalog {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("catalog file \(path): cannot be read")
        }
        let catalog: Catalog
        do {
            catalog = try JSONDecoder().decode(Catalog.self, from: data)
        } catch let error as DecodingError {
            let e = CreditsError(decoding: error)
            throw ValidationError("catalog file \(path): \(e.field ?? "body") \(e.message)")
        }
        do {
            try catalog.validate()
        } catch {
            throw ValidationError("catalog file \(path): \(error.field ?? "") \(error.message)")
        }
        return catalog
    }
}

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
