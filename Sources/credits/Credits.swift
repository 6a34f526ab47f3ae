import ArgumentParser

@main
struct Credits: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credits",
        abstract: "StreamVault Credits: the credit ledger, its HTTP API and tools.",
        subcommands: [Serve.self, Migrate.self, Estimate.self, Balance.self, Reconcile.self, Expire.self, Simulate.self, Bench.self]
    )
}
