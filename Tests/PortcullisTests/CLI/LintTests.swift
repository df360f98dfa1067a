import Foundation
import PortcullisCompiler
import Testing

/// `portcullis lint`: each kind of finding on a policy that has it, at its line, and none on
/// a policy without.
struct LintTests {
    static let policy = """
        host {
            external eth0
        }
        addresses office { 203.0.113.0/25 }
        group unused { web }
        network front {
            bridge br-front
            subnet 198.18.1.0/24
        }
        network vault {
            bridge br-vault
            subnet 198.18.2.0/24
            internal
        }
        container web {
            attach front 198.18.1.10
            publish 80 -> 8080/tcp
            publish 127.0.0.1:9000 -> 9000/tcp
        }
        container db {
            attach vault 198.18.2.10
        }
        allow web -> db@vault
        deny web -> db port 5432/tcp

        """

    func lint(_ text: String) throws -> CommandResult {
        let path = NSTemporaryDirectory() + "portcullis-lint-\(getpid())-\(UUID().uuidString.prefix(6)).policy"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return inProcess { try $0.runLint(path) }.replacingPath(path, with: "p.policy")
    }

    @Test func eachKindOfFindingIsReportedAtItsLine() throws {
        let result = try lint(Self.policy)
        #expect(result.status == 1)
        #expect(result.stdout == "p.policy: 5 findings\n")
        for expected in [
            "p.policy:4:11: warning: addresses 'office' is never used",
            "p.policy:5:7: warning: group 'unused' is never used",
            "p.policy:17:5: warning: 'publish 80 -> 8080/tcp (container web)' is open to everyone who reaches eth0",
            "p.policy:23:1: warning: 'allow web -> db@vault' opens an internal network to another network (web -> db into vault)",
            "p.policy:24:1: warning: 'deny web -> db port 5432/tcp' never decides: 'allow web -> db@vault' (line 23) matches all it matches",
        ] {
            #expect(result.stderr.contains(expected + "\n"), "missing: \(expected)\n\(result.stderr)")
        }
        #expect(!result.stderr.contains("127.0.0.1:9000"), "a loopback publish is not open to everyone")
    }

    @Test func theShippedWebStackHasNoFindings() {
        let result = inProcess { try $0.runLint(Repo.policies + "/web-stack.policy") }
        #expect(result.status == 0 && result.stderr.isEmpty, "\(result.stderr)")
    }
}

extension CommandResult {
    func replacingPath(_ path: String, with name: String) -> CommandResult {
        CommandResult(
            status: status, stdout: stdout.replacingOccurrences(of: path, with: name),
            stderr: stderr.replacingOccurrences(of: path, with: name))
    }
}
