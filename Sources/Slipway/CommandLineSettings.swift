/// The command line, as far as the settings go: `--flag value` pairs (the last of a repeated flag wins), and `--help`
/// or `-h`. Not swift-configuration's CommandLineArgumentsProvider: that one splits values at commas (a list of AMQP
/// URLs; a password may hold one) and passes over options it does not know, which a processor refuses.
struct CommandLineSettings {
    /// The values by setting key.
    var values: [String: String] = [:]
    var help = false

    init(parsing arguments: [String], settings: [ProcessorSetting] = ProcessorSetting.all) throws {
        let byFlag = Dictionary(settings.compactMap { setting in setting.flag.map { ($0, setting) } }, uniquingKeysWith: { a, _ in a })
        var remaining = arguments[...]
        while let flag = remaining.popFirst() {
            if flag == "--help" || flag == "-h" {
                help = true
                continue
            }
            guard let setting = byFlag[flag] else { throw ProcessorError(.badOption, "unknown option '\(flag)'") }
            guard let value = remaining.popFirst() else { throw ProcessorError(.badOption, "\(flag) needs a value") }
            values[setting.key] = value
        }
    }
}
