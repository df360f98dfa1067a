// swift-tools-version:6.0
import PackageDescription

// Portcullis compiles container-host firewall policies into nftables and iptables rulesets.
// The modules follow the compiler pipeline; data flows one way:
//   PortcullisSyntax (text -> syntax tree) -> PortcullisPolicy (checked model)
//   -> PortcullisLayouts (model -> firewall IR, one file per layout)
//   -> PortcullisRender (IR -> iptables-restore, nft text, nft JSON).
// PortcullisNet holds the address/port value types every stage shares; PortcullisIR is the
// representation rulesets are rendered from and read back into (PortcullisReaders); the way
// back to a policy is PortcullisImport. JanssonKit and NftablesKit wrap the two C libraries;
// PortcullisCompiler is the application layer every command runs through (docs/architecture.md).
let package = Package(
    name: "Portcullis",
    products: [
        .executable(name: "portcullis", targets: ["portcullis"])
    ],
    dependencies: [
        // Command-line parsing with generated help: one small type per subcommand.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Structured logging for apply/rollback; --verbose shows what is sent to the kernel.
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // The Docker Engine API over the daemon's unix socket (`http+unix`), for `inventory` and
        // `import --from docker`: Foundation's URLSession cannot reach a unix socket on Linux, and
        // SwiftNIO alone would mean writing HTTP/1.1 and chunked decoding by hand. It brings
        // SwiftNIO, swift-nio-ssl (BoringSSL's C++), swift-nio-http2 and their kin: on this 2-core
        // machine a clean `swift build --build-tests` took 8 min 6 s of CPU (14 min 54 s wall,
        // shared) against 1 min 55 s (3 min 34 s) without it; CI builds it anew every run.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // Its byte buffers and deadlines (already built for AsyncHTTPClient).
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CNftables", pkgConfig: "libnftables",
            providers: [.apt(["libnftables-dev"])]),
        .systemLibrary(
            name: "CJansson", pkgConfig: "jansson",
            providers: [.apt(["libjansson-dev"])]),
        .target(name: "PortcullisNet"),
        .target(name: "PortcullisSyntax", dependencies: ["PortcullisNet"]),
        .target(name: "PortcullisPolicy", dependencies: ["PortcullisSyntax", "PortcullisNet"]),
        .target(name: "PortcullisIR", dependencies: ["PortcullisNet"]),
        .target(name: "PortcullisLayouts", dependencies: ["PortcullisPolicy", "PortcullisIR"]),
        .target(name: "JanssonKit", dependencies: ["CJansson"]),
        .target(name: "NftablesKit", dependencies: ["CNftables"]),
        .target(name: "PortcullisRender", dependencies: ["PortcullisIR", "JanssonKit"]),
        // Reads rulesets (iptables-save text, libnftables JSON, live through libnftables) back
        // into the IR, for audit and import.
        .target(
            name: "PortcullisReaders", dependencies: ["PortcullisIR", "PortcullisNet", "JanssonKit", "NftablesKit"]),
        // What a Docker host runs (daemon, bridge networks, containers), read from the Engine API,
        // `docker inspect` output or Ansible facts, and kept as a versioned snapshot (docs/inventory.md).
        .target(
            name: "PortcullisDocker",
            dependencies: [
                "PortcullisNet", "JanssonKit", .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]),
        // The inverse of the layouts: a host's rules, read back into the IR, as the policy a layout
        // would have lowered them from (an imported host, then a syntax tree), for `import` and
        // `explain`.
        .target(
            name: "PortcullisImport",
            dependencies: [
                "PortcullisSyntax", "PortcullisIR", "PortcullisNet", "PortcullisLayouts", "PortcullisDocker",
            ]),
        // A policy's host in throwaway network namespaces and a TCP/UDP probe, for
        // `test --kernel`: real packets through the rules.
        .target(name: "PortcullisHarness", dependencies: ["PortcullisPolicy", "PortcullisNet"]),
        // Risk findings and drift on rulesets read back from hosts, for `audit`.
        .target(name: "PortcullisAudit", dependencies: ["PortcullisIR", "PortcullisNet"]),
        // Walks a ruleset as the kernel would, for `explain`.
        .target(name: "PortcullisEvaluator", dependencies: ["PortcullisIR", "PortcullisNet"]),
        // The kernel side: validation, atomic apply, generations and rollback.
        .target(
            name: "PortcullisKernel",
            dependencies: [
                "PortcullisNet", "PortcullisIR", "PortcullisRender", "JanssonKit", "NftablesKit",
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The application layer: runs the stages in order for every command (compile, audit,
        // explain, import; golden files), reads host captures, and owns the reports' formats
        // and error mapping. The CLI is a thin shell of argument parsing over it.
        .target(
            name: "PortcullisCompiler",
            dependencies: [
                "PortcullisSyntax", "PortcullisPolicy", "PortcullisLayouts", "PortcullisRender", "PortcullisEvaluator",
                "PortcullisIR", "PortcullisNet", "PortcullisReaders", "PortcullisAudit", "PortcullisImport",
                "PortcullisKernel", "JanssonKit", "PortcullisDocker", "PortcullisHarness",
                .product(name: "Logging", package: "swift-log"),
            ]),
        // `watch`: follows the Docker daemon's events and keeps the rules in step (docs/watch.md);
        // its own module so that the one-shot commands never carry the event loop and its state.
        .target(
            name: "PortcullisWatch",
            dependencies: [
                "PortcullisDocker", "PortcullisCompiler", "PortcullisKernel", "PortcullisSyntax", "PortcullisPolicy",
                "PortcullisLayouts", "JanssonKit", "NftablesKit",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "portcullis",
            dependencies: [
                "PortcullisCompiler", "PortcullisWatch", "PortcullisSyntax", "PortcullisLayouts", "PortcullisRender",
                "PortcullisKernel", "PortcullisHarness",
                "PortcullisEvaluator", "PortcullisReaders", "PortcullisAudit", "PortcullisImport", "JanssonKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "PortcullisTests",
            dependencies: [
                "PortcullisCompiler", "PortcullisSyntax", "PortcullisPolicy", "PortcullisLayouts", "PortcullisRender",
                "PortcullisIR", "PortcullisNet", "JanssonKit", "NftablesKit", "PortcullisKernel", "PortcullisEvaluator",
                "PortcullisReaders", "PortcullisAudit", "PortcullisDocker", "PortcullisImport", "PortcullisWatch",
            ],
            // Read in place through #filePath, like policies/ and golden/.
            exclude: ["Fixtures"]),
    ]
)
