//! Which outside tools the tests here can use: a test whose tool is missing is
//! ignored with a reason; one that `CANOPY_REQUIRE` names fails the build instead.

fn main() {
    canopy_house::tools::build_script(&["docker", "compose"]);
}
