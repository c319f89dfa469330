fn main() {
    clinicmeet_app::run()
}
