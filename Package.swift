// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "StreamVaultCredits",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "CreditsCore", targets: ["CreditsCore"]),
        .library(name: "CreditsStore", targets: ["CreditsStore"]),
        .library(name: "CreditsChain", targets: ["CreditsChain"]),
        .library(name: "CreditsLotus", targets: ["CreditsLotus"]),
        .library(name: "CreditsWorker", targets: ["CreditsWorker"]),
        .library(name: "CreditsServer", targets: ["CreditsServer"]),
        .executable(name: "credits", targets: ["credits"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        // Pure domain: catalog, pricing, ledger rules. Imports nothing but the stdlib.
        .target(name: "CreditsCore"),
        .target(
            name: "CreditsStore",
            dependencies: [
                "CreditsCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                // Only for its ConnectionPoolError (DatabaseOutage), which PostgresClient throws.
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The chain protocol and a simulated Filecoin on virtual time.
        .target(name: "CreditsChain", dependencies: ["CreditsCore"]),
        // The chain protocol over a Lotus node's JSON-RPC API.
        .target(
            name: "CreditsLotus",
            dependencies: [
                "CreditsCore", "CreditsChain",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The gas manager: batches uploads onto the chain and settles their holds.
        .target(
            name: "CreditsWorker",
            dependencies: [
                "CreditsCore", "CreditsStore", "CreditsChain",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "CreditsServer",
            dependencies: [
                "CreditsCore",
                "CreditsStore",
                "CreditsWorker",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                // RSA (PKCS#1 v1.5) for PayPal's webhook signatures.
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "credits",
            dependencies: [
                "CreditsCore",
                "CreditsStore",
                "CreditsChain",
                "CreditsLotus",
                "CreditsWorker",
                "CreditsServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Helpers shared by the test targets: temp folders, seeded randomness, the test PostgreSQL.
        .target(
            name: "CreditsTestSupport",
            dependencies: [
                "CreditsStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Tests/CreditsTestSupport"
        ),
        // A fake Lotus JSON-RPC node on 127.0.0.1 for the adapter's and the server's tests.
        .target(
            name: "LotusTestSupport",
            dependencies: [
                "CreditsCore", "CreditsChain",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Tests/LotusTestSupport"
        ),
        .testTarget(name: "CreditsCoreTests", dependencies: ["CreditsCore"]),
        .testTarget(
            name: "CreditsWorkerTests",
            dependencies: [
                "CreditsCore", "CreditsStore", "CreditsChain", "CreditsWorker", "CreditsTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "CreditsStoreTests",
            dependencies: [
                "CreditsCore", "CreditsStore", "CreditsTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
            ]
        ),
        .testTarget(
            name: "CreditsServerTests",
            dependencies: [
                "CreditsCore", "CreditsStore", "CreditsServer", "CreditsTestSupport", "CreditsChain", "CreditsWorker",
                "LotusTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "CreditsLotusTests",
            dependencies: [
                "CreditsCore", "CreditsStore", "CreditsChain", "CreditsLotus", "CreditsWorker", "CreditsTestSupport", "LotusTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
    ]
)
