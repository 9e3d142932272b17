using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Internal;
using PamEventStore.Crypto;
using PamEventStore.Storage;

namespace PamEventStore.Tests.Crypto;

public sealed class master_keys : IDisposable
{
    private readonly LocalDataDirectory _data = new(Path.Combine(Path.GetTempPath(), $"pamstore-keys-{Guid.NewGuid():N}"));

    private static IConfiguration Config(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build();

    private static IHostEnvironment Environment(string name) => new HostingEnvironment { EnvironmentName = name };

    [Fact]
    public void production_refuses_to_start_without_a_configured_master_key()
    {
        var error = Should.Throw<InvalidOperationException>(() => MasterKeys.FromConfiguration(Config(), Environment(Environments.Production), _data));

        error.Message.ShouldContain("Encryption:MasterKeys");
        Directory.Exists(_data.Path).ShouldBeFalse();
    }

    [Fact]
    public void development_generates_a_master_key_once_and_keeps_it()
    {
        var first = MasterKeys.FromConfiguration(Config(), Environment(Environments.Development), _data);
        var second = MasterKeys.FromConfiguration(Config(), Environment(Environments.Development), _data);

        second.ActiveKeyId.ShouldBe(first.ActiveKeyId);
        second.Active.ToArray().ShouldBe(first.Active.ToArray());
        if (!OperatingSystem.IsWindows()) File.GetUnixFileMode(_data.PathOf("master-keys.json")).ShouldBe(UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    [Fact]
    public void configured_keys_are_used_and_the_active_one_chosen()
    {
        var a = Convert.ToBase64String(new byte[32]);
        var b = Convert.ToBase64String(Enumerable.Repeat((byte)7, 32).ToArray());

        var keys = MasterKeys.FromConfiguration(
            Config(("Encryption:MasterKeys:a", a), ("Encryption:MasterKeys:b", b), ("Encryption:ActiveMasterKeyId", "b")),
            Environment(Environments.Production), _data);

        keys.ActiveKeyId.ShouldBe("b");
        keys.TryGet("a", out _).ShouldBeTrue();
    }

    [Theory]
    [InlineData("not base64!", null)]
    [InlineData("AAAA", null)]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "missing")]
    public void a_bad_master_key_configuration_is_refused(string key, string? active)
    {
        var settings = new List<(string, string)> { ("Encryption:MasterKeys:k", key) };
        if (active is not null) settings.Add(("Encryption:ActiveMasterKeyId", active));

        Should.Throw<InvalidOperationException>(() => MasterKeys.FromConfiguration(Config(settings.ToArray()), Environment(Environments.Production), _data));
    }

    [Fact]
    public void an_active_key_named_without_any_configured_is_refused_not_passed_over_for_a_generated_one()
    {
        var error = Should.Throw<StartRefusedException>(() =>
            MasterKeys.FromConfiguration(Config(("Encryption:ActiveMasterKeyId", "mk-prod")), Environment(Environments.Development), _data));

        error.Message.ShouldContain("'mk-prod' is set but no Encryption:MasterKeys are");
        Directory.Exists(_data.Path).ShouldBeFalse();
    }

    public void Dispose()
    {
        if (Directory.Exists(_data.Path)) Directory.Delete(_data.Path, recursive: true);
    }
}
