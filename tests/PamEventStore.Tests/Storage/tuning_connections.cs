using Npgsql;
using PamEventStore.Storage;

namespace PamEventStore.Tests.Storage;

public sealed class tuning_connections
{
    [Fact]
    public void a_plain_connection_string_gets_the_measured_defaults()
    {
        var tuned = new NpgsqlConnectionStringBuilder(MartenSetup.Tuned("Host=db;Database=pam;Username=pam"));

        tuned.NoResetOnClose.ShouldBeTrue();
        tuned.MaxAutoPrepare.ShouldBe(64);
        tuned.AutoPrepareMinUsages.ShouldBe(2);
        tuned.MaxPoolSize.ShouldBe(Math.Max(16, 4 * Environment.ProcessorCount));
        tuned.Timeout.ShouldBe(MartenSetup.ConnectTimeoutSeconds);
        tuned.Host.ShouldBe("db");
    }

    [Theory]
    [InlineData("Maximum Pool Size=50")]
    [InlineData("MaxPoolSize=50")]
    public void a_pool_size_the_operator_set_is_kept(string setting)
    {
        new NpgsqlConnectionStringBuilder(MartenSetup.Tuned($"Host=db;{setting}")).MaxPoolSize.ShouldBe(50);
    }

    [Fact]
    public void a_command_timeout_is_not_taken_for_the_connect_timeout()
    {
        new NpgsqlConnectionStringBuilder(MartenSetup.Tuned("Host=db;Command Timeout=10")).Timeout.ShouldBe(MartenSetup.ConnectTimeoutSeconds);
    }

    [Fact]
    public void every_setting_the_operator_set_is_kept()
    {
        var tuned = new NpgsqlConnectionStringBuilder(MartenSetup.Tuned("Host=db;No Reset On Close=false;Max Auto Prepare=0;Auto Prepare Min Usages=5;Timeout=20"));

        tuned.Timeout.ShouldBe(20);
        tuned.NoResetOnClose.ShouldBeFalse();
        tuned.MaxAutoPrepare.ShouldBe(0);
        tuned.AutoPrepareMinUsages.ShouldBe(5);
    }
}
