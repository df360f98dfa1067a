import ArgumentParser
import PortcullisCompiler

struct Fmt: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fmt",
        abstract: "Print policies in their canonical form, or check or rewrite them.",
        discussion: """
            Reads each policy file and prints it in the canonical form of \
            docs/language.md ("Formatting"): four spaces of indentation, one \
            setting per line, normalized spacing, at most one blank line in a \
            row, and every comment where it was. Formatting changes only \
            layout, never what a policy compiles to, and formatting a \
            formatted file changes nothing. Each file is formatted on its own: \
            included files are not read.

            With --check, nothing is printed but the names of the files that \
            are not in canonical form, and the exit code is 1 when there is \
            one: use it in CI. With --write, those files are rewritten in \
            place. A file that does not parse is reported as 'compile' reports \
            it (file:line:column), and the exit code is 2.

            Exit codes: 0 ok (with --check: every file canonical), 1 --check \
            found a file that is not, 2 a file cannot be read or parsed.

            '-' reads a policy from stdin (not with --write).

            Examples:
              portcullis fmt policies/web-stack.policy
              portcullis fmt --check policies/*.policy policies/include/*.policy
              portcullis fmt --write host.policy
              portcullis import --from iptables-save rules.txt | portcullis fmt --check -
            """)

    @Argument(help: "Policy files ('-' for stdin).", completion: .file(extensions: ["policy"]))
    var files: [String]

    @Flag(help: "Print the names of files not in canonical form; exit 1 if there are any.")
    var check = false

    @Flag(help: "Rewrite files that are not in canonical form.")
    var write = false

    func validate() throws {
        if check && write { throw ValidationError("give one of --check and --write") }
        if write && files.contains("-") { throw ValidationError("--write cannot rewrite stdin") }
    }

    func run() throws {
        try execute { $0.runFormat(files, mode: check ? .check : write ? .write : .print) }
    }
}
