using Microsoft.IdentityModel.Tokens;
using PamEventStore.Security;

namespace PamEventStore.Tests.Infrastructure;

/// <summary>Fixed keys for the test host, so tests can mint tokens and the database can be inspected.</summary>
public static class TestKeys
{
    public static readonly string SigningKey = Convert.ToBase64String(Enumerable.Range(1, 32).Select(i => (byte)i).ToArray());

    public const string MasterKeyId = "test-master-1";
    public static readonly string MasterKey = Convert.ToBase64String(Enumerable.Range(101, 32).Select(i => (byte)i).ToArray());

    public static readonly AuthOptions Auth = new();

    /// <summary>
    /// A token valid from 12 hours ago for two days: tests move the service's clock forward (grace
    /// windows), and the token must stay valid whichever clock checks it.
    /// </summary>
    public static string Token(TokenClaims claims, TimeSpan? lifetime = null, DateTimeOffset? now = null, string? signingKey = null, AuthOptions? auth = null) =>
        DevelopmentTokens.Issue(
            claims,
            auth ?? Auth,
            new SymmetricSecurityKey(Convert.FromBase64String(signingKey ?? SigningKey)),
            lifetime ?? TimeSpan.FromDays(2),
            now ?? DateTimeOffset.UtcNow.AddHours(-12));

    /// <summary>The settings every service under test runs with (Alba host and Kestrel process alike).</summary>
    public static Dictionary<string, string> ServiceSettings(string connectionString, string dataDirectory) => new()
    {
        ["ConnectionStrings:Marten"] = connectionString,
        ["Auth:SigningKey"] = SigningKey,
        [$"Encryption:MasterKeys:{MasterKeyId}"] = MasterKey,
        ["LocalData:Directory"] = dataDirectory,
        ["Logging:LogLevel:Default"] = "Warning",

        // Small enough that a test can fill a page with a few large batches.
        ["LogPages:MaxBytes"] = (256 * 1024).ToString(),
    };
}
