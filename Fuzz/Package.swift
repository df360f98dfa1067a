// swift-tools-version:6.0
import PackageDescription

// libFuzzer harnesses for the parsers that read untrusted text: the policy parser and checker,
// the iptables-save reader and the libnftables JSON reader. Built apart from the main package
// (`swift build --sanitize=fuzzer`, see scripts/fuzz.sh) so that its build is untouched. The
// main package exports no libraries, so Sources/ holds links to the modules under test.
let modules: [Target] = [
    .systemLibrary(name: "CNftables", pkgConfig: "libnftables"),
    .systemLibrary(name: "CJansson", pkgConfig: "jansson"),
    .target(name: "PortcullisNet"),
    .target(name: "PortcullisSyntax", dependencies: ["PortcullisNet"]),
    .target(name: "PortcullisPolicy", dependencies: ["PortcullisSyntax", "PortcullisNet"]),
    .target(name: "PortcullisIR", dependencies: ["PortcullisNet"]),
    .target(name: "PortcullisLayouts", dependencies: ["PortcullisPolicy", "PortcullisIR"]),
    .target(name: "JanssonKit", dependencies: ["CJansson"]),
    .target(name: "NftablesKit", dependencies: ["CNftables"]),
    .target(
        name: "PortcullisReaders", dependencies: ["PortcullisIR", "PortcullisNet", "JanssonKit", "NftablesKit"]),
    .target(name: "PortcullisAudit", dependencies: ["PortcullisIR", "PortcullisNet"]),
    // Import reads Docker inventories too, so its harness needs the Engine API client's
    // dependencies; fuzz.sh builds each harness alone, so the others never build them.
    .target(
        name: "PortcullisDocker",
        dependencies: [
            "PortcullisNet", "JanssonKit", .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
    .target(
        name: "PortcullisImport",
        dependencies: ["PortcullisSyntax", "PortcullisIR", "PortcullisNet", "PortcullisLayouts", "PortcullisDocker"]),
]

/// One executable per parser; each hands its input to libFuzzer's driver.
func harness(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzDriver"] + dependencies, path: "Harnesses/\(name)")
}

let package = Package(
    name: "PortcullisFuzz",
    dependencies: [
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
    ],
    targets: modules + [
        .target(name: "FuzzDriver", path: "Harnesses/FuzzDriver"),
        harness("fuzz-policy", ["PortcullisSyntax", "PortcullisPolicy"]),
        harness("fuzz-iptables-save", ["PortcullisReaders", "PortcullisAudit", "PortcullisIR"]),
        harness("fuzz-nft-json", ["PortcullisReaders", "PortcullisAudit", "PortcullisIR"]),
        harness("fuzz-import", ["PortcullisReaders", "PortcullisImport", "PortcullisIR"]),
    ]
)
