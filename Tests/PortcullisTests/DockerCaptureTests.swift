import Foundation
import PortcullisCompiler
import Testing

/// The docker-20.10 layout against rulesets real Docker 20.10.24 daemons wrote
/// (Fixtures/docker-20.10, made by scripts/capture-docker-20.10.sh): each scenario's policy
/// must compile to exactly the captured `iptables-save` output, counters and `#` lines aside.
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
    static func captured(_ scenario: String) -> String {
        let text = Repo.read("\(directory)/\(scenario).rules")
        var lines: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("#### ip6tables") { break }
            if line.hasPrefix("#") || line.isEmpty { continue }
            lines.append(String(line))
        }
        return lines.joined(separator: "\n") + "\n"
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
        #expect(files.count == 1)
        let actual = files[0].text
        let expected = Self.captured(scenario)
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
