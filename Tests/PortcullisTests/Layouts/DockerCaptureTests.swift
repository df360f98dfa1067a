import Foundation
import PortcullisCompiler
import Testing

/// The docker-20.10 layout against rulesets real Docker 20.10.24 daemons wrote
/// (Fixtures/docker-20.10, made by scripts/capture-docker-20.10.sh): each scenario's policy
/// must compile to exactly the captured `iptables-save` output, counters and `#` lines aside,
/// and to the captured `ip6tables-save` output as a second file when the daemon wrote any
/// (the s18 to s24 scenarios ran with `--experimental --ip6tables`; the policies say
/// `ip6tables on`).
@Suite struct DockerCaptureTests {
    static let directory = Repo.fixtures + "/docker-20.10"
    static var scenarios: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".policy") }
            .sorted()
            .map { String($0.dropLast(".policy".count)) }
    }

    /// Docker's own order of these bindings changes between runs (see the capture's notes).
    static let unorderedScenarios: Set<String> = ["s16-ports-sort-mixed"]

    /// The IPv4 part of a capture, as iptables-restore input.
    static func captured(_ scenario: String) -> String { parts(scenario).ipv4 }

    /// The IPv4 and IPv6 parts of a capture (the IPv6 one empty when the daemon wrote none).
    static func parts(_ scenario: String) -> (ipv4: String, ipv6: String) {
        let text = Repo.read("\(directory)/\(scenario).rules")
        var parts: [[String]] = [[], []]
        var part = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("#### ip6tables") {
                part = 1
                continue
            }
            if line.hasPrefix("#") || line.isEmpty { continue }
            parts[part].append(String(line))
        }
        return (
            parts[0].joined(separator: "\n") + "\n", parts[1].isEmpty ? "" : parts[1].joined(separator: "\n") + "\n"
        )
    }

    @Test func everyCaptureHasAPolicy() {
        #expect(Self.scenarios.count >= 15)
        for file in (try? FileManager.default.contentsOfDirectory(atPath: Self.directory)) ?? []
        where file.hasSuffix(".rules") {
            #expect(Self.scenarios.contains(String(file.dropLast(".rules".count))), "\(file) has no policy")
        }
    }

    @Test(arguments: scenarios)
    func compilesToTheCapturedRuleset(_ scenario: String) throws {
        let result = Compiler().compile(
            "\(Self.directory)/\(scenario).policy", layout: "docker-20.10", backend: "iptables")
        let files = try result.get()
        let (expected, expected6) = Self.parts(scenario)
        #expect(files.map(\.fileExtension) == (expected6.isEmpty ? ["iptables"] : ["iptables", "ip6tables"]))
        let actual = files[0].text
        if files.count == 2 {
            #expect(
                files[1].text == expected6,
                "\(UnifiedDiff.make(old: expected6, new: files[1].text, oldName: "captured", newName: "compiled") ?? "")"
            )
        }
        if Self.unorderedScenarios.contains(scenario) {
            #expect(actual.split(separator: "\n").sorted() == expected.split(separator: "\n").sorted())
        } else {
            #expect(
                actual == expected,
                "\(UnifiedDiff.make(old: expected, new: actual, oldName: "captured", newName: "compiled") ?? "")")
        }
    }
}

extension CompileFailure: CustomStringConvertible {
    public var description: String { report }
}
