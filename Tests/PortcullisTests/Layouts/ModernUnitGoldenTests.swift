import Foundation
import PortcullisCompiler
import Testing

/// docker-28 and docker-29 against the VERBATIM iptables and ip6tables unit-test goldens of
/// docker-rules.md 5.9 and 6.9 (dual-stack networks, in Fixtures/docker-28-ipv6 and
/// docker-29-ipv6; gateway mode nat-unprotected, in Fixtures/docker-29-gateway-modes): each
/// `.iptables` / `.ip6tables` file is the golden as moby stores it, each `u*.policy` the host it
/// describes.
///
/// moby's unit test runs the bridge driver's firewaller alone, without the controller that
/// creates DOCKER-USER, so its goldens have neither the chain nor FORWARD's jump to it. The
/// comparison takes exactly those two lines out of the compiled text (after checking that they
/// are there: a daemon writes them); everything else must match table by table, byte for byte.
/// The test dumps the raw table even when it holds no rule; Portcullis writes no empty table
/// (iptables-save does not show one either until something uses it), so an empty expected
/// table may be missing.
@Suite struct ModernUnitGoldenTests {
    struct Fixture: Sendable, CustomTestStringConvertible {
        let folder: String
        let scenario: String
        var testDescription: String { "\(folder)/\(scenario)" }
        var layout: String { String(folder.prefix("docker-2x".count)) }
        var directory: String { Repo.fixtures + "/" + folder }
    }

    static let fixtures: [Fixture] = ["docker-28-ipv6", "docker-29-ipv6", "docker-29-gateway-modes"].flatMap {
        folder in
        ((try? FileManager.default.contentsOfDirectory(atPath: Repo.fixtures + "/" + folder)) ?? []).filter {
            $0.hasPrefix("u") && $0.hasSuffix(".policy")
        }.sorted().map { Fixture(folder: folder, scenario: String($0.dropLast(".policy".count))) }
    }

    @Test func everyVerbatimGoldenIsThere() {
        #expect(
            Self.fixtures.map(\.testDescription) == [
                "docker-28-ipv6/u59-internal", "docker-28-ipv6/u59-nat", "docker-29-ipv6/u69-internal",
                "docker-29-ipv6/u69-nat", "docker-29-gateway-modes/u69-natunprot",
            ])
    }

    static let userChainLines = [":DOCKER-USER - [0:0]", "-A FORWARD -j DOCKER-USER"]

    /// The compiled text without DOCKER-USER, which the unit goldens do not have.
    static func withoutUserChain(_ text: String) -> String {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        return lines.filter { !userChainLines.contains($0) }.joined(separator: "\n")
    }

    @Test(arguments: fixtures)
    func compilesToTheVerbatimGoldens(_ fixture: Fixture) throws {
        let files = try Compiler().compile(
            "\(fixture.directory)/\(fixture.scenario).policy", layout: fixture.layout, backend: "iptables"
        ).get()
        let goldens = ["iptables", "ip6tables"].filter {
            FileManager.default.fileExists(atPath: "\(fixture.directory)/\(fixture.scenario).\($0)")
        }
        #expect(!goldens.isEmpty)
        for fileExtension in goldens {
            let file = try #require(files.first { $0.fileExtension == fileExtension }, "no \(fileExtension) file")
            for line in Self.userChainLines { #expect(file.text.contains(line + "\n")) }
            let expected = VerbatimFixtures.tables(
                Repo.read("\(fixture.directory)/\(fixture.scenario).\(fileExtension)"))
            let actual = VerbatimFixtures.tables(Self.withoutUserChain(file.text))
            #expect(Set(actual.keys).subtracting(expected.keys).isEmpty)
            for (name, text) in expected.sorted(by: { $0.key < $1.key }) {
                // The test dumps raw even when nothing uses it; an empty table is not written.
                if actual[name] == nil && !text.contains("\n-A ") { continue }
                let compiled = actual[name] ?? ""
                #expect(
                    compiled == text,
                    "\(fileExtension) \(name): \(UnifiedDiff.make(old: text, new: compiled, oldName: "moby golden", newName: "compiled") ?? "")"
                )
            }
        }
    }
}

/// The kernel's verdict on the ip6tables side: each scenario's compiled `.ip6tables` file loads
/// with ip6tables-restore in a fresh namespace and reads back byte for byte with ip6tables-save.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct ModernIPv6KernelTests {
    @Test(arguments: ModernUnitGoldenTests.fixtures.filter { $0.folder.hasSuffix("-ipv6") })
    func ip6tablesLoadsAndSavesIdentically(_ fixture: ModernUnitGoldenTests.Fixture) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let files = try Compiler().compile(
            "\(fixture.directory)/\(fixture.scenario).policy", layout: fixture.layout, backend: "iptables"
        ).get()
        let text = try #require(files.first { $0.fileExtension == "ip6tables" }?.text)
        let namespace = try TestNamespace()
        let load = namespace.exec(["ip6tables-restore"], input: text)
        try #require(load.status == 0, "ip6tables-restore: \(load.stderr)")
        #expect(namespace.savedIp6tables() == text)
    }
}
